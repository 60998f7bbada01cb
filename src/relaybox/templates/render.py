"""Render Courier Elemental content for one channel: subject, plain text, HTML and parts.

`render()` is pure: it takes the stored content, the channel, the already-assembled template
variables and the brand, and returns a `RenderedContent`. Which elements show up is decided by
`relaybox.templates.elemental`; this module fills their Handlebars templates
(`templates.handlebars`, under an output and time budget) and turns each into plain text, an
HTML block (email, laid out with the brand by `templates.layout`) and a structured part that
`templates.channels` shapes into push, chat (Slack Block Kit), webhook and in-app payloads.

Escaping: text and subject are never HTML-escaped. In HTML, text-like elements are rendered as
plain text and then escaped as a whole (so literal `<` in the template is shown, not parsed); only
the `html` element keeps Handlebars' own escaping of `{{values}}` around its raw markup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relaybox.errors import ValidationError
from relaybox.templates import channels, handlebars, layout
from relaybox.templates.elemental import (
    Node,
    channel_raw,
    localized,
    select_nodes,
    template_sources,
    validate_structure,
)
from relaybox.templates.handlebars import DEFAULT_LIMITS, RenderLimits

__all__ = [
    "RenderLimits",
    "RenderedContent",
    "render",
    "template_variables",
    "validate_content",
    "validate_template",
]

EMAIL_CHANNEL = "email"


@dataclass(frozen=True)
class RenderedContent:
    """A message rendered for one channel."""

    channel: str
    subject: str | None
    text: str
    html: str | None
    #: Channel-specific rendered parts beyond subject/text/html: push ``{title, body}``, chat
    #: ``{blocks, text}`` (Slack Block Kit), webhook ``{payload}``, in-app
    #: ``{title, body, actions}``; providers read what their channel defines.
    parts: Mapping[str, Any] = field(default_factory=dict)


def template_variables(
    data: Mapping[str, Any],
    profile: Mapping[str, Any],
    recipient: str | None,
    brand: str | None,
) -> dict[str, Any]:
    """What templates see: the data keys at the top level, plus `data`, `profile`, `recipient`
    and `brand` (which win over data keys of the same name)."""
    return {**data, "data": data, "profile": profile, "recipient": recipient, "brand": brand}


def render(
    content: Mapping[str, Any],
    *,
    channel: str,
    variables: Mapping[str, Any],
    brand: Mapping[str, Any] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> RenderedContent:
    """Render sugar or Elemental `content` for `channel`; raises `ValidationError` if malformed
    or if rendering exceeds `limits`."""
    validate_structure(content)
    style = layout.BrandStyle.of(brand)
    with handlebars.rendering(limits, style.snippets):
        blocks = [
            _render_node(node, variables, channel, style)
            for node in select_nodes(
                content, channel=channel, variables=variables, tick=handlebars.tick
            )
        ]
        subject = next((b.subject for b in blocks if b.subject is not None), None)
        text = "\n\n".join(b.text for b in blocks if b.text)
        parts = [b.part for b in blocks if b.part is not None]
        raw = channel_raw(content, channel)
        if channel != EMAIL_CHANNEL:
            shaped = channels.parts_for(channel, subject=subject, text=text, parts=parts)
            out = RenderedContent(channel, subject, text, None, shaped)
            return out if raw is None else _with_raw(out, raw, variables)
        footer = style.footer(variables)
        document = layout.email_document([b.html for b in blocks if b.html], subject, style, footer)
        if footer is not None:
            text = f"{text}\n\n---\n{footer.text}" if text else footer.text
        out = RenderedContent(channel, subject, text, document)
        return out if raw is None else _with_raw(out, raw, variables)


def _fill_raw(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return handlebars.fill(value, variables)
    if isinstance(value, Mapping):
        return {k: _fill_raw(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_raw(v, variables) for v in value]
    return value


def _with_raw(
    out: RenderedContent, raw: Mapping[str, Any], variables: Mapping[str, Any]
) -> RenderedContent:
    """A channel block's `raw` payload, filled, wins over what its elements rendered.

    Email reads `subject`, `html` (values HTML-escaped) and `text`; other channels take the
    whole payload as their parts (e.g. Slack `blocks`, push `title`/`body`, a webhook
    `payload`), with `title`/`subject` and `text`/`body` also as subject and text.
    """
    filled = _fill_raw({k: v for k, v in raw.items() if k != "html"}, variables)
    subject = _first_string(filled, "subject", "title") or out.subject
    text = _first_string(filled, "text", "body") or out.text
    if out.channel == EMAIL_CHANNEL:
        html = raw.get("html")
        document = handlebars.fill(html, variables, escape=True) if isinstance(html, str) else None
        return RenderedContent(out.channel, subject, text, document or out.html)
    return RenderedContent(out.channel, subject, text, None, {**out.parts, **filled})


def _first_string(values: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        if isinstance(values.get(key), str) and values[key]:
            return str(values[key])
    return None


def validate_content(content: Any) -> None:
    """Raise `ValidationError` naming the problem if `content` is malformed or won't compile."""
    validate_structure(content)
    for where, source in template_sources(content):
        try:
            handlebars.check(source)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from exc


def validate_template(source: str) -> None:
    """Raise `ValidationError` if one Handlebars source (a brand footer, a snippet) is invalid."""
    handlebars.check(source)


# --- Elements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    text: str | None = None
    html: str | None = None
    subject: str | None = None
    #: The element as rendered, for non-email channels: `{"type": ..., <filled fields>}`.
    part: dict[str, Any] | None = None


_EMPTY = _Block()
_ElementRenderer = Callable[[Mapping[str, Any], Mapping[str, Any], layout.BrandStyle], _Block]

_BLOCK_MARGIN = layout.BLOCK_MARGIN
_TEXT_STYLES: dict[str, tuple[str, str]] = {
    "text": ("p", _BLOCK_MARGIN),
    "h1": ("h1", "margin:0 0 16px;font-size:28px;line-height:1.25;font-weight:bold;"),
    "h2": ("h2", "margin:0 0 12px;font-size:22px;line-height:1.3;font-weight:bold;"),
    "subtext": ("p", "margin:0 0 16px;font-size:13px;color:#6b7280;"),
}


def _render_node(
    node: Node, variables: Mapping[str, Any], channel: str, style: layout.BrandStyle
) -> _Block:
    handlebars.tick()
    kind = node.element["type"]
    if kind == "html" and channel != EMAIL_CHANNEL:
        return _EMPTY
    context = variables if node.loop_scope is None else {**variables, "$": node.loop_scope}
    try:
        return _RENDERERS[kind](node.element, context, style)
    except ValidationError as exc:
        raise ValidationError(f"{node.path}: {exc.message}") from exc


def _field(element: Mapping[str, Any], name: str, context: Mapping[str, Any]) -> str:
    """A template field in the recipient's locale, filled and trimmed."""
    return handlebars.fill(localized(element, name, context) or "", context).strip()


def _render_meta(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    if not isinstance(element.get("title"), str):
        return _EMPTY
    # A subject is a single header line; template whitespace must not leak newlines into it.
    return _Block(subject=" ".join(_field(element, "title", context).split()))


def _render_text(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    body = _field(element, "content", context)
    if not body:
        return _EMPTY
    text_style = element.get("text_style") or "text"
    tag, css = _TEXT_STYLES[text_style]
    css += layout.align_css(element.get("align")) + _text_css(element, context)
    return _Block(
        text=body,
        html=f'<{tag} style="{css}">{layout.html_text(body)}</{tag}>',
        part={"type": "text", "content": body, "text_style": text_style},
    )


def _render_action(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    label = _field(element, "content", context)
    href = _field(element, "href", context)
    if not label and not href:
        return _EMPTY
    text = f"{label}: {href}" if label and href else label or href
    kind = element.get("style") or "button"
    align = element.get("align") or ("left" if kind == "link" else "center")
    color = layout.css_value(element.get("background_color"), context) or style.primary
    link_css = _action_css(kind, color, full_width=align == "full")
    anchor = (
        f'<a href="{layout.attr(layout.safe_href(href))}" style="{link_css}" target="_blank">'
        f"{layout.html_text(label or href)}</a>"
    )
    wrapper = _BLOCK_MARGIN + layout.align_css("center" if align == "full" else align)
    part = {"type": "action", "content": label or href, "href": layout.safe_href(href)}
    if element.get("action_id"):
        part["action_id"] = element["action_id"]
    return _Block(
        text=text,
        html=f'<div style="{wrapper}">{anchor}</div>',
        part={**part, "style": kind},
    )


def _action_css(style: str, color: str, *, full_width: bool) -> str:
    if style == "link":
        return f"color:{color};text-decoration:underline;"
    if style == "tertiary":
        return f"color:{color};text-decoration:underline;font-weight:bold;"
    display = "display:block;text-align:center;" if full_width else "display:inline-block;"
    shape = f"{display}padding:12px 24px;border-radius:4px;font-weight:bold;text-decoration:none;"
    if style == "secondary":
        return f"{shape}border:2px solid {color};color:{color};background-color:#ffffff;"
    return f"{shape}border:2px solid {color};color:#ffffff;background-color:{color};"


def _render_divider(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    color = layout.css_value(element.get("color"), context) or "#e5e7eb"
    rule = f'<hr style="border:0;border-top:1px solid {color};margin:24px 0;">'
    return _Block(text="---", html=rule, part={"type": "divider"})


def _render_quote(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    body = _field(element, "content", context)
    if not body:
        return _EMPTY
    border = layout.css_value(element.get("border_color"), context) or "#d1d5db"
    css = (
        f"{_BLOCK_MARGIN}padding:4px 0 4px 16px;border-left:4px solid {border};color:#4b5563;"
        + layout.align_css(element.get("align"))
    )
    text = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    return _Block(
        text=text,
        html=f'<blockquote style="{css}">{layout.html_text(body)}</blockquote>',
        part={"type": "quote", "content": body},
    )


def _render_image(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    src = _field(element, "src", context)
    alt = _field(element, "alt_text", context)
    href = _field(element, "href", context)
    width = layout.css_value(element.get("width"), context)
    size = f"width:{width};" if width else ""
    image = (
        f'<img src="{layout.attr(src)}" alt="{layout.attr(alt)}" '
        f'style="display:inline-block;max-width:100%;height:auto;border:0;{size}">'
    )
    if href:
        image = f'<a href="{layout.attr(layout.safe_href(href))}" target="_blank">{image}</a>'
    wrapper = _BLOCK_MARGIN + layout.align_css(element.get("align") or "center")
    part: dict[str, Any] | None = None
    if src:
        part = {"type": "image", "src": src, "alt_text": alt}
        if href:
            part["href"] = layout.safe_href(href)
    return _Block(
        text=alt or None, html=f'<div style="{wrapper}">{image}</div>' if src else None, part=part
    )


def _render_html(
    element: Mapping[str, Any], context: Mapping[str, Any], style: layout.BrandStyle
) -> _Block:
    source = localized(element, "content", context) or ""
    markup = handlebars.fill(source, context, escape=True).strip()
    return _Block(html=markup or None)


_RENDERERS: dict[str, _ElementRenderer] = {
    "meta": _render_meta,
    "text": _render_text,
    "action": _render_action,
    "divider": _render_divider,
    "quote": _render_quote,
    "image": _render_image,
    "html": _render_html,
}


def _flag(value: Any) -> bool:
    # The Elemental schema types bold/italic/... as strings ("true"), not booleans.
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0")
    return bool(value)


def _text_css(element: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    css = ""
    color = layout.css_value(element.get("color"), context)
    if color:
        css += f"color:{color};"
    if _flag(element.get("bold")):
        css += "font-weight:bold;"
    if _flag(element.get("italic")):
        css += "font-style:italic;"
    decorations = [
        name
        for key, name in (("underline", "underline"), ("strikethrough", "line-through"))
        if _flag(element.get(key))
    ]
    if decorations:
        css += f"text-decoration:{' '.join(decorations)};"
    return css
