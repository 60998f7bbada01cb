"""A /send held for a delivery window goes out when the (injected) clock reaches the window."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from fake_service import free_port

from relaybox.bootstrap import DEFAULT_WORKSPACE, build
from relaybox.clock import FrozenClock
from relaybox.settings import Settings

# Saturday 2026-12-05 12:00 UTC; 09:00 on Monday in New York is 14:00 UTC.
SATURDAY_NOON = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()
MONDAY_9_NEW_YORK = datetime(2026, 12, 7, 14, 0, tzinfo=UTC).timestamp()


class Inbox:
    def __init__(self) -> None:
        self.rcpts: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.rcpts.extend(envelope.rcpt_tos)
        return "250 OK"


async def test_held_message_is_sent_once_the_clock_reaches_the_window(tmp_path: Path) -> None:
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    clock = FrozenClock(SATURDAY_NOON)
    runtime = build(
        Settings(database_url=f"sqlite:///{tmp_path / 'relaybox.db'}", api_key="k"),
        clock=clock,
    )
    await runtime.start()
    try:
        await runtime.services.providers.create(
            DEFAULT_WORKSPACE,
            {
                "provider": "smtp",
                "settings": {
                    "host": "127.0.0.1",
                    "port": port,
                    "from_address": "relaybox@example.test",
                    "security": "none",
                },
            },
        )
        accepted = await runtime.services.sending.send(
            DEFAULT_WORKSPACE,
            {
                "message": {
                    "to": {"email": "ny@example.test", "timezone": "America/New_York"},
                    "content": {"title": "Weekday", "body": "b"},
                    "delay": {"until": "Mo-Fr 09:00-17:00"},
                }
            },
        )
        assert accepted.request_id is not None
        message = await runtime.store.get_message(DEFAULT_WORKSPACE, accepted.request_id)
        assert message is not None
        assert message.status == "DELAYED"
        assert message.run_id is not None
        run = await runtime.store.get_run(DEFAULT_WORKSPACE, message.run_id)
        assert run is not None
        assert run.due_at == MONDAY_9_NEW_YORK
        assert runtime.timers is not None

        # A minute before the window opens nothing goes out.
        clock.set(MONDAY_9_NEW_YORK - 60)
        runtime.timers.poke()
        await asyncio.sleep(0.5)
        assert inbox.rcpts == []

        clock.set(MONDAY_9_NEW_YORK)
        runtime.timers.poke()
        for _ in range(100):
            if inbox.rcpts:
                break
            await asyncio.sleep(0.05)
        assert inbox.rcpts == ["ny@example.test"]
        # The outcome is committed just after the provider call returns.
        for _ in range(100):
            sent = await runtime.store.get_message(DEFAULT_WORKSPACE, accepted.request_id)
            if sent is not None and sent.status != "DELAYED" and sent.status != "ENQUEUED":
                break
            await asyncio.sleep(0.05)
        assert sent is not None
        assert sent.status in ("SENT", "DELIVERED")
    finally:
        await runtime.stop()
        smtp.stop()
