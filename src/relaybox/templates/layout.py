"""The email document around rendered elements, styled by the brand, and HTML helpers.

A brand (Courier's shape: `settings.colors`, `settings.email.header|footer|head|
templateOverride`, `snippets`) gives the primary colour of buttons and links, a header bar and
logo, a footer (markdown with Handlebars values, plus social links) and optional raw
header/footer/head markup. Brand markup is the workspace's own content, like an `html`
element; recipient data only ever reaches it escaped.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relaybox.templates import handlebars

BLOCK_MARGIN = "margin:0 0 16px;"
DEFAULT_PRIMARY = "#2563eb"
_SAFE_CSS = re.compile(r"^[#\w\s.,%()-]{1,64}$")
_UNSAFE_SCHEMES = frozenset({"javascript", "vbscript", "data"})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
_MD_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_MD_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_SOCIAL = ("facebook", "instagram", "linkedin", "medium", "twitter")


def html_text(text: str) -> str:
    return html_lib.escape(text).replace("\n", "<br>\n")


def attr(value: str) -> str:
    return html_lib.escape(value, quote=True)


def safe_href(href: str) -> str:
    # Variables can end up in hrefs; never let recipient data turn a link into script.
    compact = re.sub(r"[\x00-\x20]", "", href).lower()
    match = _SCHEME.match(compact)
    return "#" if match and match.group(1) in _UNSAFE_SCHEMES else href


def safe_css(value: Any) -> str | None:
    """`value` if it is harmless inside a `style` attribute (a colour, a width)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _SAFE_CSS.match(value) else None


def css_value(value: Any, context: Mapping[str, Any]) -> str | None:
    """A templated style value, filled, if harmless inside a `style` attribute."""
    if not isinstance(value, str):
        return None
    return safe_css(handlebars.fill(value, context))


def align_css(align: Any) -> str:
    if align in ("left", "center", "right"):
        return f"text-align:{align};"
    return ""


def _get(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, Mapping):
            return None
        tree = tree.get(key)
    return tree


@dataclass(frozen=True)
class Footer:
    text: str
    html: str


@dataclass(frozen=True)
class BrandStyle:
    """What rendering takes from a brand; `BrandStyle.of(None)` is the unbranded look."""

    primary: str = DEFAULT_PRIMARY
    branded: bool = False
    name: str = ""
    bar_color: str | None = None
    logo_image: str | None = None
    logo_href: str | None = None
    footer_markdown: str | None = None
    social: tuple[tuple[str, str], ...] = ()
    head: str | None = None
    #: `settings.email.templateOverride` when enabled: raw head/header/footer and colours.
    override: Mapping[str, Any] = field(default_factory=dict)
    snippets: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, brand: Mapping[str, Any] | None) -> BrandStyle:
        if not brand:
            return cls()
        settings = brand.get("settings") or {}
        primary = safe_css(_get(settings, "colors", "primary")) or DEFAULT_PRIMARY
        email = _get(settings, "email") or {}
        override = _get(email, "templateOverride") or {}
        social = tuple(
            (network, url)
            for network in _SOCIAL
            if isinstance(url := _get(email, "footer", "social", network, "url"), str) and url
        )
        items = _get(brand, "snippets", "items") or []
        return cls(
            primary=primary,
            branded=True,
            name=str(brand.get("name") or ""),
            bar_color=safe_css(_get(email, "header", "barColor")) or primary,
            logo_image=_string(_get(email, "header", "logo", "image")),
            logo_href=_string(_get(email, "header", "logo", "href")),
            footer_markdown=_string(_get(email, "footer", "markdown")),
            social=social,
            head=_string(_get(email, "head", "content")),
            override=override if isinstance(override, Mapping) and override.get("enabled") else {},
            snippets={
                str(i["name"]): str(i["value"])
                for i in items
                if isinstance(i, Mapping) and i.get("name") and isinstance(i.get("value"), str)
            },
        )

    def footer(self, variables: Mapping[str, Any]) -> Footer | None:
        """The brand footer for this recipient (markdown filled with the template values)."""
        markdown = ""
        if self.footer_markdown:
            markdown = handlebars.fill(self.footer_markdown, variables).strip()
        if not markdown and not self.social:
            return None
        text_lines = [_MD_BOLD.sub(r"\1", _MD_LINK.sub(r"\1 (\2)", markdown))] if markdown else []
        text_lines += [f"{network.title()}: {url}" for network, url in self.social]
        html_parts = [self._markdown_html(markdown)] if markdown else []
        if self.social:
            links = " &middot; ".join(
                f'<a href="{attr(safe_href(url))}" style="color:{self.primary};" '
                f'target="_blank">{network.title()}</a>'
                for network, url in self.social
            )
            html_parts.append(f'<p style="margin:8px 0 0;">{links}</p>')
        return Footer(text="\n".join(text_lines), html="\n".join(html_parts))

    def _markdown_html(self, markdown: str) -> str:
        """The small markdown subset footers use: links, bold, paragraphs and line breaks."""
        escaped = html_lib.escape(markdown, quote=False)

        def link(match: re.Match[str]) -> str:
            href = attr(safe_href(html_lib.unescape(match.group(2))))
            return f'<a href="{href}" style="color:{self.primary};" target="_blank">{match[1]}</a>'

        linked = _MD_BOLD.sub(r"<strong>\1</strong>", _MD_LINK.sub(link, escaped))
        paragraphs = [p.replace("\n", "<br>\n") for p in re.split(r"\n\s*\n", linked) if p.strip()]
        return "\n".join(f'<p style="margin:0 0 8px;">{p}</p>' for p in paragraphs)


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# --- Email document ---------------------------------------------------------------------------

_FONT_STACK = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
_PRESENTATION = 'role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'


def email_document(
    blocks: list[str], subject: str | None, style: BrandStyle, footer: Footer | None
) -> str:
    """A complete HTML email: nested presentation tables center a card in every client."""
    override = style.override
    page = safe_css(override.get("backgroundColor")) or "#f4f4f5"
    card = safe_css(override.get("blocksBackgroundColor")) or "#ffffff"
    width = safe_css(override.get("width")) or "600px"
    title = f"<title>{html_lib.escape(subject)}</title>\n" if subject else ""
    head_extra = "".join(f"{h}\n" for h in (style.head, override.get("head")) if h)
    rows = [_header(style), _body_row(blocks)]
    if footer is not None or override.get("footer"):
        rows.append(_footer_row(style, footer))
    return (
        "<!doctype html>\n"
        '<html>\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{title}{head_extra}</head>\n"
        f'<body style="margin:0;padding:0;background-color:{page};">\n'
        f'<table {_PRESENTATION} style="background-color:{page};">\n'
        '<tr><td align="center" style="padding:24px 12px;">\n'
        f'<table {_PRESENTATION} style="max-width:{width};background-color:{card};">\n'
        f"{''.join(r for r in rows if r)}"
        "</table>\n</td></tr>\n</table>\n</body>\n</html>\n"
    )


def _header(style: BrandStyle) -> str:
    if style.override.get("header"):
        return f"<tr><td>{style.override['header']}</td></tr>\n"
    if not style.branded:
        return ""
    bar = f'<tr><td style="height:6px;line-height:6px;background-color:{style.bar_color};">'
    bar += "&nbsp;</td></tr>\n"
    if not style.logo_image:
        return bar
    logo = (
        f'<img src="{attr(style.logo_image)}" alt="{attr(style.name)}" '
        'style="display:inline-block;max-height:48px;max-width:200px;border:0;">'
    )
    if style.logo_href:
        logo = f'<a href="{attr(safe_href(style.logo_href))}" target="_blank">{logo}</a>'
    return f'{bar}<tr><td style="padding:24px 32px 0;">{logo}</td></tr>\n'


def _body_row(blocks: list[str]) -> str:
    return (
        f'<tr><td style="padding:32px;font-family:{_FONT_STACK};'
        'font-size:16px;line-height:1.5;color:#111827;">\n'
        f"{chr(10).join(blocks)}\n</td></tr>\n"
    )


def _footer_row(style: BrandStyle, footer: Footer | None) -> str:
    custom = style.override.get("footer")
    inner = custom if custom else (footer.html if footer else "")
    return (
        f'<tr><td style="padding:16px 32px 32px;border-top:1px solid #e5e7eb;'
        f"font-family:{_FONT_STACK};font-size:13px;line-height:1.5;color:#6b7280;"
        f'">\n{inner}\n</td></tr>\n'
    )
