"""The ``relaybox`` command line.

relaybox serve    API, engine and timers in one process (the default deployment)
relaybox api      API only (PostgreSQL; workers elsewhere execute the runs)
relaybox worker   engine and timers only (PostgreSQL; any number of them)
relaybox migrate  apply database migrations and exit
relaybox keys create [--workspace W] [--test]   print a new API key
relaybox hash-password   read a console admin password, print its hash
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from types import FrameType
from typing import Any

import uvicorn

from relaybox.services import admin
from relaybox.settings import Settings

DB_HELP = "default sqlite:///./relaybox.db (or RELAYBOX_DATABASE_URL)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaybox", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the API, engine and timers in one process"),
        ("api", "run the API only (PostgreSQL)"),
    ):
        role = sub.add_parser(name, help=text)
        role.add_argument("--host", default=None, help="default 127.0.0.1")
        role.add_argument("--port", type=int, default=None, help="default 8080")
        role.add_argument("--database-url", default=None, help=DB_HELP)
        role.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    worker = sub.add_parser("worker", help="run the engine and timers only (PostgreSQL)")
    worker.add_argument("--database-url", default=None, help=DB_HELP)
    worker.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument("--database-url", default=None, help=DB_HELP)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="print a new API key")
    create.add_argument("--workspace", default="default")
    create.add_argument("--database-url", default=None, help=DB_HELP)
    create.add_argument(
        "--test", action="store_true", help="a test-environment key: its sends end SIMULATED"
    )
    sub.add_parser(
        "hash-password",
        help="read a console admin password and print RELAYBOX_ADMIN_PASSWORD_HASH's value",
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("host", "port", "database_url")
        if getattr(args, name, None) is not None
    }
    if getattr(args, "no_migrate", False):
        overrides["migrate"] = False
    return Settings(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # httpx logs every request URL at INFO; webhook URLs may carry tokens.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command in {"api", "worker"} and settings.database_url.startswith("sqlite"):
        print(
            f"relaybox {args.command}: SQLite is served by a single process; use "
            "`relaybox serve`, or PostgreSQL (--database-url postgresql://…) to run separate "
            "api and worker processes",
            file=sys.stderr,
        )
        return 2
    if args.command in {"serve", "api"}:
        return _serve(settings, run_engine=args.command == "serve")
    if args.command == "worker":
        return asyncio.run(_work(settings))
    if args.command == "migrate":
        return _migrate(settings)
    if args.command == "hash-password":
        return _hash_password()
    return asyncio.run(_create_key(settings, args.workspace, test=args.test))


def _serve(settings: Settings, *, run_engine: bool) -> int:
    from relaybox import bootstrap

    runtime = bootstrap.build(settings, run_engine=run_engine)

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
        # Longer than clients keep idle connections (httpx, under the Courier SDKs: 5 s), so
        # the client closes an idle connection first and never sends a request on one the
        # server is closing at that moment (uvicorn's default is also 5 s: a race).
        timeout_keep_alive=75,
    )
    # uvicorn re-raises the SIGTERM it caught once shutdown is done; with the default handler
    # that would kill the process and turn a clean drain into exit status -15.
    signal.signal(signal.SIGTERM, lambda *_: None)
    server = uvicorn.Server(config)
    drain = server.handle_exit

    def handle_exit(sig: int, frame: FrameType | None) -> None:
        runtime.services.inbox.close()  # live inbox streams would hold up the drain
        drain(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]
    server.run()
    return 0


async def _work(settings: Settings) -> int:
    from relaybox import bootstrap

    runtime = bootstrap.build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    print(f"Relaybox worker {runtime.engine.owner if runtime.engine else ''} started", flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.stop()
    return 0


def _migrate(settings: Settings) -> int:
    from relaybox import bootstrap

    applied = bootstrap.create_store(settings.database_url).migrate()
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


async def _create_key(settings: Settings, workspace: str, *, test: bool = False) -> int:
    from relaybox import bootstrap

    runtime = bootstrap.build(settings, run_engine=False)
    await runtime.store.open(migrate=settings.migrate)
    try:
        key = await runtime.services.keys.create(workspace, test=test)
    finally:
        await runtime.store.close()
        await runtime.http.aclose()
    sys.stdout.write(key + "\n")
    return 0


def _hash_password() -> int:
    # getpass when typed at a terminal; a plain line when piped (scripts, tests).
    password = getpass.getpass("Admin password: ") if sys.stdin.isatty() else sys.stdin.readline()
    password = password.rstrip("\n")
    if not password:
        print("relaybox hash-password: empty password", file=sys.stderr)
        return 2
    print(admin.hash_password(password))
    return 0
