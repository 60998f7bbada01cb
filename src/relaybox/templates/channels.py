"""Channel payloads built from rendered elements (`RenderedContent.parts`).

Each element arrives rendered as a small dict (`{"type": "text", "content": ...}`,
`{"type": "action", "content", "href", "style"}`, `{"type": "image", "src", "alt_text"}`,
`{"type": "quote"}`, `{"type": "divider"}`); this module shapes them per channel:

* push — `{title, body}`
* chat / direct_message (Slack) — `{blocks, text}`: Block Kit header, mrkdwn sections, actions
  with buttons, images and dividers, within Slack's documented size limits; `text` is the
  notification fallback
* webhook — `{payload: {title, body, elements}}`
* inbox / in_app / banner — `{title, body, actions: [{content, href}]}`
* anything else (sms, email) — nothing beyond subject and text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["output_blocks", "parts_for", "slack_blocks"]

CHAT_CHANNELS = frozenset({"chat", "direct_message", "slack"})
INBOX_CHANNELS = frozenset({"inbox", "in_app", "banner"})

# Slack Block Kit limits (api.slack.com/reference/block-kit/blocks).
_MAX_BLOCKS = 50
_MAX_SECTION_TEXT = 3000
_MAX_HEADER_TEXT = 150
_MAX_BUTTON_TEXT = 75
_MAX_ACTIONS = 25
_MAX_ALT_TEXT = 2000


def parts_for(
    channel: str, *, subject: str | None, text: str, parts: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    builder = _BUILDERS.get(channel)
    if builder is None:
        if channel in CHAT_CHANNELS:
            builder = _chat
        elif channel in INBOX_CHANNELS:
            builder = _inbox
        else:
            return {}
    return builder(subject, text, parts)


def _push(subject: str | None, text: str, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"title": subject or "", "body": text}


def _webhook(subject: str | None, text: str, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"payload": {"title": subject, "body": text, "elements": list(parts)}}


def _inbox(subject: str | None, text: str, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    body = "\n\n".join(
        str(p.get("content") or p.get("alt_text") or "")
        for p in parts
        if p["type"] in ("text", "quote") and (p.get("content") or p.get("alt_text"))
    )
    actions = [{"content": p["content"], "href": p["href"]} for p in parts if p["type"] == "action"]
    return {"title": subject or "", "body": body, "actions": actions}


def _chat(subject: str | None, text: str, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    fallback = "\n\n".join(x for x in (subject, text) if x)
    return {"blocks": slack_blocks(subject, parts), "text": fallback[:_MAX_SECTION_TEXT]}


def _mrkdwn_escape(text: str) -> str:
    # Slack treats &, < and > as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    clipped = text if len(text) <= _MAX_SECTION_TEXT else text[: _MAX_SECTION_TEXT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": clipped}}


def _button(part: dict[str, Any]) -> dict[str, Any]:
    label = str(part["content"])[:_MAX_BUTTON_TEXT]
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": label}}
    if part.get("href") and part["href"] != "#":
        button["url"] = part["href"]
    if part.get("action_id"):
        button["action_id"] = str(part["action_id"])
    if part.get("style") in (None, "button"):
        button["style"] = "primary"
    return button


def slack_blocks(subject: str | None, parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slack Block Kit blocks for the rendered elements (consecutive actions share a block)."""
    blocks: list[dict[str, Any]] = []
    if subject:
        header = subject[:_MAX_HEADER_TEXT]
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": header}})
    for part in parts:
        kind = part["type"]
        if kind == "action":
            last = blocks[-1] if blocks else None
            if (
                last is not None
                and last["type"] == "actions"
                and len(last["elements"]) < _MAX_ACTIONS
            ):
                last["elements"].append(_button(part))
            else:
                blocks.append({"type": "actions", "elements": [_button(part)]})
        elif kind == "text":
            content = _mrkdwn_escape(part["content"])
            if part.get("text_style") in ("h1", "h2"):
                content = f"*{content}*"
            blocks.append(_section(content))
        elif kind == "quote":
            lines = _mrkdwn_escape(part["content"]).splitlines() or [""]
            blocks.append(_section("\n".join(f"> {line}" for line in lines)))
        elif kind == "divider":
            blocks.append({"type": "divider"})
        elif kind == "image":
            alt = (part.get("alt_text") or "image")[:_MAX_ALT_TEXT]
            blocks.append({"type": "image", "image_url": part["src"], "alt_text": alt})
    return blocks[:_MAX_BLOCKS]


_BUILDERS: dict[str, Callable[[str | None, str, Sequence[dict[str, Any]]], dict[str, Any]]] = {
    "push": _push,
    "webhook": _webhook,
}


def output_blocks(channel: str, parts: Mapping[str, Any], text: str | None) -> list[dict[str, str]]:
    """Courier's render output ``blocks`` (``[{type, text}]``, ``GET /messages/{id}/output``)
    from a channel's rendered parts: the webhook's elements, the chat's Block Kit blocks, the
    inbox body and actions; else (push, sms) the text's paragraphs. Email has its HTML instead.
    """
    if channel == "email":
        return []
    payload = parts.get("payload")
    if isinstance(payload, Mapping) and isinstance(payload.get("elements"), list):
        return [b for e in payload["elements"] if isinstance(e, Mapping) for b in _element(e)]
    if isinstance(parts.get("blocks"), list):
        return [b for k in parts["blocks"] if isinstance(k, Mapping) for b in _slack_block(k)]
    body = parts.get("body") if isinstance(parts.get("body"), str) else text
    blocks = [{"type": "text", "text": p} for p in (body or "").split("\n\n") if p]
    actions = parts.get("actions")
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, Mapping):
            blocks.append({"type": "action", "text": str(action.get("content") or "")})
    return blocks


def _element(part: Mapping[str, Any]) -> list[dict[str, str]]:
    """A rendered element as output blocks (see the module docstring for their shapes)."""
    kind = str(part.get("type") or "text")
    said = part.get("content") or part.get("alt_text") or part.get("src") or ""
    return [{"type": kind, "text": str(said)}]


def _slack_block(block: Mapping[str, Any]) -> list[dict[str, str]]:
    """A Block Kit block as output blocks; the header is the output's title, not a block."""
    kind = block.get("type")
    if kind == "section":
        inner = block.get("text")
        said = inner.get("text") if isinstance(inner, Mapping) else ""
        return [{"type": "text", "text": str(said or "")}]
    if kind == "actions":
        buttons = [e for e in block.get("elements") or [] if isinstance(e, Mapping)]
        labels = [e.get("text") for e in buttons]
        return [
            {"type": "action", "text": str(t.get("text") if isinstance(t, Mapping) else t or "")}
            for t in labels
        ]
    if kind == "image":
        return [{"type": "image", "text": str(block.get("alt_text") or "")}]
    if kind == "divider":
        return [{"type": "divider", "text": ""}]
    return []
