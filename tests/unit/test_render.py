"""Unit tests for the Courier Elemental renderer (`relaybox.templates.render`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from relaybox.errors import ValidationError
from relaybox.templates.render import RenderedContent, render, validate_content


def _doc(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"version": "2022-01-01", "elements": list(elements)}


def _text(content: dict[str, Any], channel: str = "email", **variables: Any) -> str:
    return render(content, channel=channel, variables=variables).text


def test_sugar_renders_subject_text_and_html() -> None:
    """Sugar title/body become the subject and a paragraph in both text and HTML."""
    result = render(
        {"title": "Welcome {{name}}", "body": "Hi {{name}}, thanks for joining."},
        channel="email",
        variables={"name": "Ada"},
    )
    assert (result.channel, result.subject) == ("email", "Welcome Ada")
    assert result.text == "Hi Ada, thanks for joining."
    assert result.html is not None
    assert result.html.startswith("<!doctype html>")
    assert "max-width:600px" in result.html
    assert "<title>Welcome Ada</title>" in result.html
    assert "Hi Ada, thanks for joining.</p>" in result.html


def test_non_email_channels_have_no_html() -> None:
    """Only the email channel gets an HTML body; push carries its title and body as parts."""
    result = render({"title": "T", "body": "B"}, channel="push", variables={})
    expected = RenderedContent("push", "T", "B", None, {"title": "T", "body": "B"})
    assert result == expected


def test_meta_text_and_action_for_email() -> None:
    """meta sets the subject, text/h1 become blocks and an action is 'label: href' in text."""
    content = _doc(
        {"type": "meta", "title": "Order {{data.order_id}} shipped"},
        {"type": "text", "content": "Good news", "text_style": "h1"},
        {"type": "text", "content": "Your order is on its way."},
        {"type": "action", "content": "Track it", "href": "https://t.test/{{data.order_id}}"},
        {"type": "action", "content": "Help", "href": "https://help.test", "style": "link"},
    )
    result = render(content, channel="email", variables={"data": {"order_id": "A1"}})
    assert result.subject == "Order A1 shipped"
    assert result.text == (
        "Good news\n\nYour order is on its way.\n\n"
        "Track it: https://t.test/A1\n\nHelp: https://help.test"
    )
    assert result.html is not None
    assert ">Good news</h1>" in result.html
    assert '<a href="https://t.test/A1" style="display:inline-block;' in result.html
    assert '<a href="https://help.test" style="color:' in result.html


def test_values_are_escaped_in_html_but_not_in_text() -> None:
    """A value like 'Hi <J>' stays raw in text/subject and is HTML-escaped in the HTML body."""
    content = _doc(
        {"type": "meta", "title": "For {{who}}"}, {"type": "text", "content": "Hi {{who}}"}
    )
    result = render(content, channel="email", variables={"who": "<J> & co"})
    assert result.subject == "For <J> & co"
    assert result.text == "Hi <J> & co"
    assert result.html is not None
    assert "Hi &lt;J&gt; &amp; co</p>" in result.html
    assert "<J>" not in result.html


def test_html_element_is_raw_markup_with_escaped_values_on_email_only() -> None:
    """An html element keeps its markup, escapes its values, and is dropped off email."""
    content = _doc({"type": "html", "content": "<b>{{who}}</b>"}, {"type": "text", "content": "x"})
    email = render(content, channel="email", variables={"who": "<i>"})
    assert email.html is not None
    assert "<b>&lt;i&gt;</b>" in email.html
    assert email.text == "x"
    assert render(content, channel="sms", variables={"who": "<i>"}).text == "x"


def test_missing_variables_render_empty() -> None:
    """Unknown variables and paths render as empty strings."""
    assert _text({"body": "[{{nope}}][{{a.b.c}}]"}) == "[][]"


def test_channels_filter_limits_elements_to_listed_channels() -> None:
    """An element with `channels` only renders on the channels it lists."""
    content = _doc(
        {"type": "text", "content": "everywhere"},
        {"type": "text", "content": "email only", "channels": ["email"]},
        {"type": "text", "content": "sms only", "channels": ["sms"]},
    )
    assert _text(content, "email") == "everywhere\n\nemail only"
    assert _text(content, "sms") == "everywhere\n\nsms only"


def test_channel_element_selects_matching_then_default_then_plain_elements() -> None:
    """A channel block wins for its channel; others use 'default', else non-channel elements."""
    content = _doc(
        {"type": "meta", "title": "Doc title"},
        {"type": "text", "content": "plain"},
        {
            "type": "channel",
            "channel": "email",
            "elements": [
                {"type": "meta", "title": "Email title"},
                {"type": "text", "content": "email body"},
            ],
        },
        {
            "type": "channel",
            "channel": "default",
            "elements": [{"type": "text", "content": "dflt"}],
        },
    )
    email = render(content, channel="email", variables={})
    assert (email.subject, email.text) == ("Email title", "email body")
    push = render(content, channel="push", variables={})
    assert (push.subject, push.text) == ("Doc title", "dflt")
    without_default = _doc(*content["elements"][:3])
    assert _text(without_default, "sms") == "plain"


def test_loop_renders_element_per_item_with_item_and_index() -> None:
    """A loop element renders once per list item, exposing $.item and $.index."""
    content = _doc(
        {
            "type": "text",
            "content": "{{$.index}}. {{$.item.name}}{{#if $.item.tags}} ({{$.item.tags.0}}){{/if}}",
            "loop": "data.items",
        }
    )
    items = [{"name": "Tea", "tags": ["hot"]}, {"name": "Cake"}]
    assert _text(content, data={"items": items}) == "0. Tea (hot)\n\n1. Cake"
    assert _text(content, data={}) == ""


def test_loop_variables_work_inside_each_blocks_and_leave_dollar_text_alone() -> None:
    """$.item resolves inside nested {{#each}} blocks, and '$.' outside tags is untouched."""
    content = _doc(
        {
            "type": "text",
            "content": "$.99 {{#each $.item.sizes}}{{$.item.name}}-{{this}} {{/each}}",
            "loop": "items",
        }
    )
    assert _text(content, items=[{"name": "Tee", "sizes": ["S", "M"]}]) == "$.99 Tee-S Tee-M"


def test_if_checks_truthiness_of_a_path_and_its_negation() -> None:
    """`if: path` and `if: !path` follow JS truthiness; other expressions run as JavaScript."""
    content = _doc(
        {"type": "text", "content": "vip", "if": "profile.vip"},
        {"type": "text", "content": "regular", "if": "!profile.vip"},
        {"type": "text", "content": "complex", "if": "data.count > 100"},
        {"type": "text", "content": "zero", "if": "data.count"},
    )
    assert _text(content, profile={"vip": True}, data={"count": 0}) == "vip"
    assert _text(content, profile={}, data={"count": 3}) == "regular\n\nzero"
    assert _text(content, profile={}, data={"count": 101}) == "regular\n\ncomplex\n\nzero"


def test_if_is_evaluated_per_loop_item() -> None:
    """Within a loop, `if` can test the current $.item."""
    content = _doc({"type": "text", "content": "{{$.item.n}}", "loop": "xs", "if": "$.item.on"})
    assert _text(content, xs=[{"n": "a", "on": True}, {"n": "b"}, {"n": "c", "on": 1}]) == "a\n\nc"


def test_locales_replace_content_for_recipient_locale() -> None:
    """locales override content via variables['locale'] or profile.locale, falling back."""
    content = _doc(
        {
            "type": "text",
            "content": "Hello {{name}}",
            "locales": {"fr": {"content": "Bonjour {{name}}"}},
        },
        {"type": "action", "content": "Open", "href": "https://a.test", "locales": {}},
    )
    assert _text(content, name="Ana", locale="fr").startswith("Bonjour Ana")
    assert _text(content, name="Ana", profile={"locale": "fr_CA"}).startswith("Bonjour Ana")
    assert _text(content, name="Ana", profile={"locale": "de"}).startswith("Hello Ana")
    assert _text(content, name="Ana").startswith("Hello Ana")


def test_handlebars_blocks_and_else() -> None:
    """{{#if}}/{{else}} and {{#each}} follow Handlebars semantics."""
    body = "{{#if vip}}VIP{{else}}member{{/if}}:{{#each xs}} {{this}}{{else}} none{{/each}}"
    assert _text({"body": body}, vip=False, xs=[1, 2]) == "member: 1 2"
    assert _text({"body": body}, vip=True, xs=[]) == "VIP: none"


@pytest.mark.parametrize(
    "source",
    ["Hi {{name", "{{#if x}}open", "{{#if x}}a{{/each}}", "{{/if}}", "{{else}}", "{{x y=1}}"],
)
def test_bad_template_raises_validation_error(source: str) -> None:
    """Malformed Handlebars raises ValidationError naming the element and the problem."""
    with pytest.raises(ValidationError, match=r"body: invalid Handlebars template"):
        render({"body": source}, channel="email", variables={})
    with pytest.raises(ValidationError, match=r"body: invalid Handlebars template"):
        validate_content({"body": source})


def test_template_errors_name_the_element() -> None:
    """Errors inside Elemental documents say which element failed."""
    content = _doc({"type": "text", "content": "ok"}, {"type": "quote", "content": "{{#if a}}"})
    with pytest.raises(ValidationError, match=r"^elements\[1\]: .*\{\{#if\}\} is never closed"):
        render(content, channel="email", variables={})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{add 2 3}}", "5"),
        ("{{add a b}}", "3.5"),
        ('{{add "2" 1}}', "3"),
        ("{{subtract 2 5}}", "-3"),
        ("{{multiply 4 2.5}}", "10"),
        ("{{divide 6 3}}", "2"),
        ("{{divide 1 4}}", "0.25"),
        ("{{divide 1 0}}", ""),
        ("{{mod 7 3}}", "1"),
        ("{{mod -7 3}}", "-1"),
        ("{{abs -4}}", "4"),
        ("{{ceil 1.2}}", "2"),
        ("{{floor 1.8}}", "1"),
        ("{{round 2.5}}", "3"),
        ("{{round -2.5}}", "-2"),
        ("{{round 1.005 1}}", "1"),
        ("{{round 3.14159 2}}", "3.14"),
        ("{{add (multiply 2 3) 1}}", "7"),
        ("{{add missing 1}}", ""),
    ],
)
def test_math_helpers(source: str, expected: str) -> None:
    """Courier's math helpers compute like JavaScript and print integers without '.0'."""
    assert _text({"body": f"[{source}]"}, a=1, b=2.5) == f"[{expected}]"


def test_math_helper_with_wrong_arity_is_a_validation_error() -> None:
    """Calling a math helper with the wrong number of arguments names the helper."""
    with pytest.raises(ValidationError, match="helper 'add' takes 2 argument"):
        render({"body": "{{add 1}}"}, channel="sms", variables={})


def test_divider_quote_and_image_blocks() -> None:
    """Divider, quote and image render sensible text and HTML; unsafe hrefs are neutralised."""
    content = _doc(
        {"type": "quote", "content": "line one\nline two"},
        {"type": "divider", "color": "#ff0000"},
        {
            "type": "image",
            "src": "https://i.test/a.png",
            "alt_text": "Logo",
            "href": "javascript:x",
        },
        {"type": "image", "src": "https://i.test/b.png"},
    )
    result = render(content, channel="email", variables={})
    assert result.text == "> line one\n> line two\n\n---\n\nLogo"
    assert result.html is not None
    assert "border-top:1px solid #ff0000" in result.html
    assert '<a href="#" target="_blank"><img src="https://i.test/a.png" alt="Logo"' in result.html
    assert '<img src="https://i.test/b.png" alt=""' in result.html


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("nope", "content must be an object"),
        ({}, "must have 'elements' or sugar"),
        ({"title": 3}, r"content.title must be a string"),
        ({"elements": {}}, r"elements must be a list"),
        (_doc({"type": "video"}), r"elements\[0\].type must be one of"),
        (_doc({"type": "action", "content": "x"}), r"'href' is required"),
        (_doc({"type": "text", "content": "x", "text_style": "h9"}), r"'text_style' must be"),
        (_doc({"type": "text", "content": "x", "channels": "email"}), r"'channels' must be"),
        (_doc({"type": "text", "content": "x", "locales": {"fr": "y"}}), r"locales\['fr'\]"),
        (
            _doc({"type": "channel", "channel": "a", "elements": [{"type": "channel"}]}),
            r"elements\[0\]\.elements\[0\] \(channel\)",
        ),
    ],
)
def test_validate_content_rejects_malformed_content(content: Any, message: str) -> None:
    """validate_content (and render) reject malformed content with a message naming it."""
    with pytest.raises(ValidationError, match=message):
        validate_content(content)
    if isinstance(content, dict):
        with pytest.raises(ValidationError, match=message):
            render(content, channel="email", variables={})


def test_validate_content_accepts_sugar_and_elements_combined() -> None:
    """Sugar keys and elements may be combined; sugar comes first."""
    content = {"title": "T", "body": "B", **_doc({"type": "text", "content": "E"})}
    validate_content(content)
    result = render(content, channel="email", variables={})
    assert (result.subject, result.text) == ("T", "B\n\nE")


def test_concurrent_first_renders_of_distinct_templates() -> None:
    """Compiling many new templates from several threads at once gives correct output."""

    def render_one(n: int) -> str:
        return _text({"body": f"{n}:{{{{#if on}}}}{{{{v}}}}-{n}{{{{/if}}}}"}, on=True, v=n)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(render_one, range(200)))
    assert results == [f"{n}:{n}-{n}" for n in range(200)]
