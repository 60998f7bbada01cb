"""``client.messages.content(id)`` (GET /messages/{id}/output) shows what each channel got,
``blocks`` included, for channels other than email."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relaybox_harness import Workspace, unique

ELEMENTS: dict[str, Any] = {
    "version": "2022-01-01",
    "elements": [
        {"type": "meta", "title": "Order {{order}}"},
        {"type": "text", "content": "Shipped {{order}}"},
        {"type": "action", "content": "Track it", "href": "https://example.com/t"},
    ],
}


def sent(ws: Workspace, message: dict[str, Any]) -> Any:
    """Send ``message``, wait until SENT, and return its output's only result."""
    client = ws.client()
    request_id = client.send.message(message=message).request_id
    ws.wait_message(request_id, "SENT")
    (result,) = client.messages.content(request_id).results
    return result


def test_webhook_output_blocks_are_its_elements(webhook_ws: Workspace) -> None:
    result = sent(
        webhook_ws,
        {
            "to": {"user_id": unique("u")},
            "content": ELEMENTS,
            "data": {"order": "42"},
            "routing": {"method": "single", "channels": ["webhook"]},
        },
    )
    assert result.channel == "webhook"
    assert result.content.title == "Order 42"
    assert [(b.type, b.text) for b in result.content.blocks] == [
        ("text", "Shipped 42"),
        ("action", "Track it"),
    ]


def test_inbox_output_blocks_are_its_body_and_actions(
    new_workspace: Callable[[str], Workspace],
) -> None:
    ws = new_workspace("output-inbox")
    ws.client().providers.create(provider="inbox", settings={})
    result = sent(
        ws,
        {
            "to": {"user_id": unique("u")},
            "content": ELEMENTS,
            "data": {"order": "7"},
            "routing": {"method": "single", "channels": ["inbox"]},
        },
    )
    assert result.channel == "inbox"
    assert [(b.type, b.text) for b in result.content.blocks] == [
        ("text", "Shipped 7"),
        ("action", "Track it"),
    ]
