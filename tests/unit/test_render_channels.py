"""Per-channel rendering: push, chat (Slack Block Kit), webhook, in-app, SMS; locales."""

from __future__ import annotations

from typing import Any

import pytest

from relaybox.errors import ValidationError
from relaybox.templates import channels
from relaybox.templates.render import render, validate_content


def _doc(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"version": "2022-01-01", "elements": list(elements)}


ORDER = _doc(
    {"type": "meta", "title": "Order {{order_id}} shipped"},
    {"type": "text", "content": "Good news, {{name}}", "text_style": "h1"},
    {"type": "text", "content": "It ships <today> & arrives soon."},
    {"type": "divider"},
    {"type": "image", "src": "https://img.test/{{order_id}}.png", "alt_text": "Parcel"},
    {"type": "quote", "content": "Fast\nfriendly"},
    {"type": "action", "content": "Track", "href": "https://t.test/{{order_id}}"},
    {"type": "action", "content": "Help", "href": "https://help.test", "style": "link"},
    {"type": "html", "content": "<b>email only</b>"},
)
VARS = {"order_id": "A1", "name": "Ada"}


def test_push_parts_are_title_and_body() -> None:
    """Push gets the meta title and the plain-text body (no HTML, actions as text)."""
    out = render(ORDER, channel="push", variables=VARS)
    assert out.html is None
    assert out.parts["title"] == "Order A1 shipped"
    assert out.parts["body"] == out.text
    assert out.parts["body"].startswith("Good news, Ada\n\nIt ships <today> & arrives soon.")
    assert "email only" not in out.parts["body"]


def test_chat_parts_are_slack_blocks_with_fallback_text() -> None:
    """Slack Block Kit: header, mrkdwn sections (escaped), divider, image, quote, one actions
    block holding both buttons, and a fallback `text`."""
    out = render(ORDER, channel="chat", variables=VARS)
    blocks = out.parts["blocks"]
    assert [b["type"] for b in blocks] == [
        "header",
        "section",
        "section",
        "divider",
        "image",
        "section",
        "actions",
    ]
    assert blocks[0]["text"] == {"type": "plain_text", "text": "Order A1 shipped"}
    assert blocks[1]["text"] == {"type": "mrkdwn", "text": "*Good news, Ada*"}
    assert blocks[2]["text"]["text"] == "It ships &lt;today&gt; &amp; arrives soon."
    assert blocks[4] == {
        "type": "image",
        "image_url": "https://img.test/A1.png",
        "alt_text": "Parcel",
    }
    assert blocks[5]["text"]["text"] == "> Fast\n> friendly"
    track, help_ = blocks[6]["elements"]
    assert track == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Track"},
        "url": "https://t.test/A1",
        "style": "primary",
    }
    assert help_["url"] == "https://help.test"
    assert "style" not in help_
    assert out.parts["text"].startswith("Order A1 shipped\n\nGood news, Ada")


def test_direct_message_channel_also_renders_blocks() -> None:
    """`direct_message` (Courier's Slack channel name) renders like `chat`."""
    out = render(_doc({"type": "text", "content": "hi"}), channel="direct_message", variables={})
    assert out.parts["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]


def test_slack_limits_are_respected() -> None:
    """Section text is cut to 3000 characters and a message to 50 blocks."""
    many = _doc(
        {"type": "text", "content": "x" * 5000},
        *({"type": "divider"} for _ in range(80)),
    )
    blocks = render(many, channel="chat", variables={}).parts["blocks"]
    assert len(blocks) == 50
    assert len(blocks[0]["text"]["text"]) == 3000


def test_webhook_payload_is_json_of_the_rendered_elements() -> None:
    """The webhook payload lists every rendered element with its filled fields."""
    out = render(ORDER, channel="webhook", variables=VARS)
    payload = out.parts["payload"]
    assert payload["title"] == "Order A1 shipped"
    assert payload["body"] == out.text
    assert payload["elements"] == [
        {"type": "text", "content": "Good news, Ada", "text_style": "h1"},
        {"type": "text", "content": "It ships <today> & arrives soon.", "text_style": "text"},
        {"type": "divider"},
        {"type": "image", "src": "https://img.test/A1.png", "alt_text": "Parcel"},
        {"type": "quote", "content": "Fast\nfriendly"},
        {"type": "action", "content": "Track", "href": "https://t.test/A1", "style": "button"},
        {"type": "action", "content": "Help", "href": "https://help.test", "style": "link"},
    ]


def test_inbox_parts_separate_actions_from_the_body() -> None:
    """In-app: title, a body without the action labels, and the actions as {content, href}."""
    out = render(ORDER, channel="inbox", variables=VARS)
    assert out.parts == {
        "title": "Order A1 shipped",
        "body": "Good news, Ada\n\nIt ships <today> & arrives soon.\n\nFast\nfriendly",
        "actions": [
            {"content": "Track", "href": "https://t.test/A1"},
            {"content": "Help", "href": "https://help.test"},
        ],
    }


def test_unsafe_action_href_never_reaches_a_payload() -> None:
    """A javascript: link from data becomes '#' and a Slack button without a url."""
    content = _doc({"type": "action", "content": "Go", "href": "{{link}}"})
    variables = {"link": "javascript:alert(1)"}
    inbox = render(content, channel="inbox", variables=variables)
    assert inbox.parts["actions"] == [{"content": "Go", "href": "#"}]
    chat = render(content, channel="chat", variables=variables)
    assert "url" not in chat.parts["blocks"][0]["elements"][0]


def test_sms_is_plain_text_only() -> None:
    """SMS: the text, no HTML and no extra parts; the html element is left out."""
    out = render(ORDER, channel="sms", variables=VARS)
    assert (out.html, out.parts) == (None, {})
    assert "Track: https://t.test/A1" in out.text
    assert "email only" not in out.text


def test_channels_filter_and_channel_blocks_per_channel() -> None:
    """`channels` on an element and `channel` blocks pick content per channel."""
    content = _doc(
        {"type": "channel", "channel": "push", "elements": [{"type": "text", "content": "P"}]},
        {"type": "channel", "channel": "default", "elements": [
            {"type": "text", "content": "all"},
            {"type": "text", "content": "sms only", "channels": ["sms"]},
        ]},
    )  # fmt: skip
    assert render(content, channel="push", variables={}).text == "P"
    assert render(content, channel="sms", variables={}).text == "all\n\nsms only"
    assert render(content, channel="chat", variables={}).text == "all"


@pytest.mark.parametrize(
    ("locale", "expected_subject", "expected_text"),
    [
        ("fr", "Bonjour Ada", "Votre commande"),
        ("fr-CA", "Bonjour Ada", "Votre commande"),
        ("de", "Hello Ada", "Your order"),
        (None, "Hello Ada", "Your order"),
    ],
)
def test_locale_from_the_profile_with_fallback_to_base(
    locale: str | None, expected_subject: str, expected_text: str
) -> None:
    """The profile's locale picks `locales` overrides of title and content; "fr-CA" falls back
    to "fr", an untranslated locale to the base text."""
    content = _doc(
        {
            "type": "meta",
            "title": "Hello {{name}}",
            "locales": {"fr": {"title": "Bonjour {{name}}"}},
        },
        {"type": "text", "content": "Your order", "locales": {"fr": {"content": "Votre commande"}}},
    )
    profile = {} if locale is None else {"locale": locale}
    out = render(content, channel="push", variables={"name": "Ada", "profile": profile})
    assert (out.subject, out.text) == (expected_subject, expected_text)


def test_loop_and_if_apply_on_every_channel() -> None:
    """`loop` repeats an element per item ($.item), `if` drops it when false."""
    content = _doc(
        {"type": "text", "content": "- {{$.item.name}}", "loop": "data.items"},
        {"type": "text", "content": "VIP", "if": "data.vip"},
    )
    variables = {"data": {"items": [{"name": "a"}, {"name": "b"}], "vip": False}}
    out = render(content, channel="inbox", variables=variables)
    assert out.parts["body"] == "- a\n\n- b"


def test_channel_raw_payload_wins_over_elements() -> None:
    """A channel block's `raw` (values filled) becomes the channel's parts, subject and text;
    on email its `html` (values escaped) and `subject`."""
    content = _doc(
        {"type": "channel", "channel": "chat", "raw": {
            "text": "Order {{order_id}}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{name}}*"}}],
        }},
        {"type": "channel", "channel": "email", "raw": {
            "subject": "Raw {{order_id}}", "html": "<p>{{name}}</p>", "text": "plain {{name}}",
        }},
        {"type": "channel", "channel": "default", "elements": [{"type": "text", "content": "x"}]},
    )  # fmt: skip
    variables = {"order_id": "A1", "name": "<Ada>"}
    chat = render(content, channel="chat", variables=variables)
    assert chat.parts["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*<Ada>*"}}
    ]
    assert (chat.text, chat.parts["text"]) == ("Order A1", "Order A1")
    email = render(content, channel="email", variables=variables)
    assert (email.subject, email.html, email.text) == (
        "Raw A1",
        "<p>&lt;Ada&gt;</p>",
        "plain <Ada>",
    )
    assert render(content, channel="push", variables=variables).text == "x"


def test_raw_must_be_an_object_with_valid_templates() -> None:
    """`raw` is validated (an object whose strings compile) when content is saved."""
    with pytest.raises(ValidationError, match="'raw' must be an object"):
        validate_content(_doc({"type": "channel", "channel": "chat", "raw": "blocks"}))
    with pytest.raises(ValidationError, match=r"elements\[0\]\.raw\.text"):
        validate_content(_doc({"type": "channel", "channel": "chat", "raw": {"text": "{{#if}}"}}))


def test_output_blocks_come_from_each_channels_parts() -> None:
    """GET /messages/{id}/output blocks: chat Block Kit, push body, sms text; email has none."""
    parts = [
        {"type": "text", "content": "Hello"},
        {"type": "action", "content": "Open", "href": "https://example.com"},
        {"type": "divider"},
    ]
    chat = channels.parts_for("chat", subject="Hi", text="Hello", parts=parts)
    assert channels.output_blocks("chat", chat, "Hello") == [
        {"type": "text", "text": "Hello"},
        {"type": "action", "text": "Open"},
        {"type": "divider", "text": ""},
    ]
    push = channels.parts_for("push", subject="Hi", text="One\n\nTwo", parts=parts)
    assert channels.output_blocks("push", push, "One\n\nTwo") == [
        {"type": "text", "text": "One"},
        {"type": "text", "text": "Two"},
    ]
    assert channels.output_blocks("sms", {}, "Code 1") == [{"type": "text", "text": "Code 1"}]
    assert channels.output_blocks("email", {}, "Body") == []
