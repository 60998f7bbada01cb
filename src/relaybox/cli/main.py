"""The ``relaybox`` command line: serve, keys create."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import uvicorn

from relaybox.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relaybox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API, engine and timers in one process")
    serve.add_argument("--host", default=None, help="default 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default 8080")
    serve.add_argument("--database-url", default=None, help="default sqlite:///./relaybox.db")

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="print a new API key")
    create.add_argument("--workspace", default="default")
    create.add_argument("--database-url", default=None)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in ("host", "port", "database_url")
        if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "serve":
        return _serve(settings)
    return asyncio.run(_create_key(settings, args.workspace))


def _serve(settings: Settings) -> int:
    from relaybox import bootstrap

    runtime = bootstrap.build(settings)

    def announce(created_key: str | None) -> None:
        if created_key:
            print(f"Created the first API key (shown once, store it now): {created_key}")
        print(f"Relaybox listening on http://{settings.host}:{settings.port}", flush=True)

    runtime.on_started = announce
    config = uvicorn.Config(
        runtime.app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()
    return 0


async def _create_key(settings: Settings, workspace: str) -> int:
    from relaybox import bootstrap

    runtime = bootstrap.build(settings, run_engine=False)
    await runtime.store.open()
    try:
        key = await runtime.services.keys.create(workspace)
    finally:
        await runtime.store.close()
        await runtime.http.aclose()
    sys.stdout.write(key + "\n")
    return 0
