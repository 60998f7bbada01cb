"""Brand-styled email and the rendering budget (sandbox) of `relaybox.templates.render`."""

from __future__ import annotations

from typing import Any

import pytest

from relaybox.errors import ValidationError
from relaybox.templates.render import RenderLimits, render


def _doc(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"version": "2022-01-01", "elements": list(elements)}


BRAND = {
    "id": "acme",
    "name": "Acme & Co",
    "settings": {
        "colors": {"primary": "#ff5500", "secondary": "#222222"},
        "email": {
            "header": {
                "barColor": "#112233",
                "logo": {"image": "https://cdn.test/logo.png", "href": "https://acme.test"},
            },
            "footer": {
                "markdown": "**Acme** Ltd, for {{name}}\n\n[Unsubscribe](https://acme.test/u)",
                "social": {"twitter": {"url": "https://twitter.test/acme"}},
            },
            "head": {"inheritDefault": False, "content": "<style>.x{color:red}</style>"},
        },
    },
    "snippets": {"items": [{"name": "sign", "value": "The {{team}} team"}]},
}
CONTENT = _doc(
    {"type": "meta", "title": "Hi"},
    {"type": "text", "content": "Hello {{name}}"},
    {"type": "action", "content": "Open", "href": "https://acme.test/o"},
)


def test_brand_colour_logo_header_and_footer_in_email_html() -> None:
    """Buttons use the primary colour; the header has the bar colour and linked logo; the
    footer renders the markdown (values filled, escaped) and social links."""
    out = render(CONTENT, channel="email", variables={"name": "<Ada>"}, brand=BRAND)
    html = out.html
    assert html is not None
    assert "background-color:#ff5500" in html
    assert "background-color:#112233" in html
    assert (
        '<a href="https://acme.test" target="_blank"><img src="https://cdn.test/logo.png" '
        'alt="Acme &amp; Co"'
    ) in html
    assert "<strong>Acme</strong> Ltd, for &lt;Ada&gt;" in html
    assert (
        '<a href="https://acme.test/u" style="color:#ff5500;" target="_blank">Unsubscribe</a>'
        in html
    )
    assert ">Twitter</a>" in html
    assert "<style>.x{color:red}</style>" in html
    assert "#2563eb" not in html


def test_brand_footer_is_appended_to_the_plain_text_part() -> None:
    """The email's text part ends with the footer as plain text (links spelled out)."""
    out = render(CONTENT, channel="email", variables={"name": "Ada"}, brand=BRAND)
    assert out.text == (
        "Hello Ada\n\nOpen: https://acme.test/o\n\n---\n"
        "Acme Ltd, for Ada\n\nUnsubscribe (https://acme.test/u)\nTwitter: https://twitter.test/acme"
    )


def test_no_brand_keeps_the_plain_look() -> None:
    """Without a brand there is no header bar, no footer and the default button colour."""
    out = render(CONTENT, channel="email", variables={"name": "Ada"})
    assert out.html is not None
    assert "#2563eb" in out.html
    assert "height:6px" not in out.html
    assert out.text == "Hello Ada\n\nOpen: https://acme.test/o"


def test_unsafe_brand_values_are_not_injected() -> None:
    """A colour that is not plain CSS falls back; a javascript: logo link becomes '#'."""
    brand = {
        "name": "x",
        "settings": {
            "colors": {"primary": "red;background:url(evil)"},
            "email": {
                "header": {"logo": {"image": "https://i.test/l.png", "href": "javascript:x"}}
            },
        },
    }
    html = render(CONTENT, channel="email", variables={}, brand=brand).html
    assert html is not None
    assert "evil" not in html
    assert "javascript" not in html
    assert "#2563eb" in html


def test_template_override_replaces_header_footer_and_colours() -> None:
    """An enabled templateOverride supplies raw header/footer markup and page colours."""
    brand = {
        "name": "x",
        "settings": {
            "email": {
                "templateOverride": {
                    "enabled": True,
                    "header": "<div id='hdr'>H</div>",
                    "footer": "<div id='ftr'>F</div>",
                    "backgroundColor": "#000001",
                    "blocksBackgroundColor": "#000002",
                    "width": "500px",
                    "mjml": {"enabled": False},
                }
            }
        },
    }
    html = render(CONTENT, channel="email", variables={}, brand=brand).html
    assert html is not None
    for piece in ("<div id='hdr'>H</div>", "<div id='ftr'>F</div>", "#000001", "#000002", "500px"):
        assert piece in html


def test_brand_snippets_are_partials() -> None:
    """Brand snippets are available as Handlebars partials `{{> name}}`."""
    content = _doc({"type": "text", "content": "Bye. {{> sign}}"})
    out = render(content, channel="sms", variables={"team": "ops"}, brand=BRAND)
    assert out.text == "Bye. The ops team"


def test_huge_nested_loop_stops_with_a_clear_error() -> None:
    """Nested {{#each}} over a big list (10^12 iterations) fails with the budget's message."""
    source = "{{#each xs}}{{#each ../xs}}{{#each ../../xs}}{{#each ../../../xs}}.{{/each}}"
    source += "{{/each}}{{/each}}{{/each}}"
    content = _doc({"type": "text", "content": source})
    limits = RenderLimits(max_output_chars=10**12, max_seconds=0.2)
    with pytest.raises(ValidationError, match=r"rendering took longer than 0\.2 s"):
        render(content, channel="sms", variables={"xs": list(range(1000))}, limits=limits)


def test_output_cap_stops_large_output() -> None:
    """Output beyond the cap fails, whether from a Handlebars loop or an Elemental loop."""
    limits = RenderLimits(max_output_chars=10_000, max_seconds=30)
    each = _doc({"type": "text", "content": "{{#each xs}}{{this}}{{/each}}"})
    with pytest.raises(ValidationError, match="larger than 10000 characters"):
        render(each, channel="sms", variables={"xs": ["y" * 100] * 200}, limits=limits)
    looped = _doc({"type": "text", "content": "row {{$.item}}", "loop": "xs"})
    with pytest.raises(ValidationError, match="larger than 10000 characters"):
        render(looped, channel="sms", variables={"xs": list(range(5000))}, limits=limits)
    # Within the cap the same templates render.
    small = render(each, channel="sms", variables={"xs": ["ab", "c"]}, limits=limits)
    assert small.text == "abc"


def test_a_snippet_including_itself_is_an_error() -> None:
    """Runaway partial recursion becomes a ValidationError, not a crash."""
    brand = {"name": "b", "snippets": {"items": [{"name": "loop", "value": "x{{> loop}}"}]}}
    content = _doc({"type": "text", "content": "{{> loop}}"})
    with pytest.raises(ValidationError, match="a snippet includes itself"):
        render(content, channel="sms", variables={}, brand=brand)
