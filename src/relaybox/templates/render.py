"""Render Courier Elemental content into one channel's subject, plain text and email HTML.

`render()` is pure: it takes the stored content, the channel and the already-assembled template
variables and returns a `RenderedContent`. Which elements show up is decided by
`relaybox.templates.elemental`; this module fills their Handlebars templates (pybars3) and lays
them out as plain text (blank-line separated) and, for email, a minimal inline-styled HTML
document.

Escaping: text and subject are never HTML-escaped. In HTML, text-like elements are rendered as
plain text and then escaped as a whole (so literal `<` in the template is shown, not parsed); only
the `html` element keeps Handlebars' own escaping of `{{values}}` around its raw markup.
"""

from __future__ import annotations

import html as html_lib
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import CodeType
from typing import Any

import pybars
from pybars import _compiler as pybars_compiler

from relaybox.errors import ValidationError
from relaybox.templates.elemental import (
    Node,
    localized_content,
    select_nodes,
    template_sources,
    validate_structure,
)

__all__ = ["RenderedContent", "render", "validate_content"]

EMAIL_CHANNEL = "email"


@dataclass(frozen=True)
class RenderedContent:
    """A message rendered for one channel."""

    channel: str
    subject: str | None
    text: str
    html: str | None
    #: Channel-specific rendered parts beyond subject/text/html, e.g. push ``title``/``body``,
    #: chat ``blocks``, webhook ``payload``; providers read what their channel defines.
    parts: Mapping[str, Any] = field(default_factory=dict)


def render(
    content: Mapping[str, Any], *, channel: str, variables: Mapping[str, Any]
) -> RenderedContent:
    """Render sugar or Elemental `content` for `channel`; raises `ValidationError` if malformed."""
    validate_structure(content)
    subject: str | None = None
    texts: list[str] = []
    htmls: list[str] = []
    for node in select_nodes(content, channel=channel, variables=variables):
        block = _render_node(node, variables, channel)
        if subject is None:
            subject = block.subject
        if block.text:
            texts.append(block.text)
        if block.html:
            htmls.append(block.html)
    document = _email_document(htmls, subject) if channel == EMAIL_CHANNEL else None
    return RenderedContent(channel=channel, subject=subject, text="\n\n".join(texts), html=document)


def validate_content(content: Any) -> None:
    """Raise `ValidationError` naming the problem if `content` is malformed or won't compile."""
    validate_structure(content)
    for where, source in template_sources(content):
        try:
            _compile(source)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from exc


# --- Handlebars -------------------------------------------------------------------------------

_COMPILER = pybars.Compiler()
# pybars keeps its code builder on the Compiler *class*, so compiling is not thread-safe even
# with one compiler per thread.
_COMPILE_LOCK = threading.Lock()

_TAG = re.compile(r"\{\{\{.*?\}\}\}|\{\{.*?\}\}", re.DOTALL)
_BLOCK_TAG = re.compile(r"^\{\{~?\s*([#^/])\s*([^\s}~]*)")
# pybars rejects `$` in names; Courier's loop variables `$.item`/`$.index` become a bracketed
# segment read from the root so they also work inside `{{#each}}`/`{{#with}}` blocks.
_LOOP_REF = re.compile(r"(?<![\w\]$.@])\$(?=\.)")
_LOOP_REF_REPLACEMENT = "@root.[$]"
# pybars only parses integer literals; Handlebars.js also takes decimals such as `{{round 2.5}}`.
# They are passed as strings, which the math helpers accept.
_DECIMAL_LITERAL = re.compile(r"(?<=[\s(])(-?\d+\.\d+)(?=[\s)}~])")


@dataclass(frozen=True)
class _Compiled:
    text: Callable[..., Any]
    html: Callable[..., Any]


@lru_cache(maxsize=2048)
def _compile(source: str) -> _Compiled:
    """Compile once per distinct source: parsing takes about a millisecond, a cache hit ~nothing."""
    _check_tags(source)
    translated = _TAG.sub(_translate_tag, source)
    try:
        with _COMPILE_LOCK:
            python_source = _COMPILER.precompile(translated)
    except pybars.PybarsError as exc:
        raise ValidationError(f"invalid Handlebars template: {exc}") from exc
    # Executing the generated module ourselves (rather than `Compiler.compile`) keeps pybars from
    # registering every template in `sys.modules`, and gives us two independent namespaces.
    code = compile(python_source, "<relaybox-template>", "exec")
    return _Compiled(text=_load(code, escape=False), html=_load(code, escape=True))


def _load(code: CodeType, *, escape: bool) -> Callable[..., Any]:
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    if not escape:
        # The generated code resolves `prepare` from its globals on every call; swapping it for a
        # non-escaping one gives exact plain text without rewriting `{{x}}` into `{{{x}}}`.
        namespace["prepare"] = _prepare_unescaped
    render_fn: Callable[..., Any] = namespace["render"]
    return render_fn


def _translate_tag(tag: re.Match[str]) -> str:
    text = _LOOP_REF.sub(_LOOP_REF_REPLACEMENT, tag.group(0))
    if '"' in text or "'" in text:
        return text  # leave string literals (which may contain digits) alone
    return _DECIMAL_LITERAL.sub(r'"\1"', text)


def _prepare_unescaped(value: Any, should_escape: bool) -> Any:
    return pybars_compiler.prepare(value, False)


def _check_tags(source: str) -> None:
    """Catch unclosed tags and blocks, which pybars silently renders as an empty string."""
    open_blocks: list[str] = []
    for tag in _TAG.finditer(source):
        block = _BLOCK_TAG.match(tag.group(0))
        if block is None:
            continue
        sigil, name = block.groups()
        if sigil == "^" and not name:  # `{{^}}` is an alias of `{{else}}`
            continue
        if sigil in "#^":
            open_blocks.append(name)
        elif not open_blocks or open_blocks.pop() != name:
            raise ValidationError(f"invalid Handlebars template: unexpected {{{{/{name}}}}}")
    if open_blocks:
        raise ValidationError(
            f"invalid Handlebars template: {{{{#{open_blocks[-1]}}}}} is never closed"
        )
    if "{{" in _TAG.sub("", source):
        raise ValidationError("invalid Handlebars template: '{{' without a closing '}}'")


def _fill(source: str, context: Mapping[str, Any], *, escape: bool = False) -> str:
    """Render one template; `escape` applies Handlebars' HTML escaping to `{{values}}`."""
    if "{{" not in source:
        return source
    compiled = _compile(source)
    template = compiled.html if escape else compiled.text
    try:
        return str(template(context, helpers=_HELPERS))
    except ValidationError:
        raise
    except (pybars.PybarsError, TypeError, ValueError, LookupError, ArithmeticError) as exc:
        # e.g. an unknown helper called with arguments, or `{{#each}}` without a list.
        raise ValidationError(f"template could not be rendered: {exc}") from exc


# --- Math helpers (Courier documents these for Handlebars) -------------------------------------

Number = int | float


def _to_number(value: Any) -> Number | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value.strip())
            except ValueError:
                continue
    return None


def _tidy(value: Number) -> Number:
    # JavaScript prints 6 / 3 as "2", not "2.0".
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _js_mod(a: Number, b: Number) -> Number:
    # JavaScript's % keeps the dividend's sign, unlike Python's.
    if isinstance(a, int) and isinstance(b, int):
        remainder = abs(a) % abs(b)
        return remainder if a >= 0 else -remainder
    return math.fmod(a, b)


def _js_round(value: Number, places: Number = 0) -> Number:
    # Math.round rounds halves up (2.5 -> 3, -2.5 -> -2); Python's round() goes to even.
    factor = 10.0 ** int(places)
    return math.floor(value * factor + 0.5) / factor


_MATH: dict[str, tuple[tuple[int, ...], Callable[..., Number]]] = {
    "add": ((2,), lambda a, b: a + b),
    "subtract": ((2,), lambda a, b: a - b),
    "multiply": ((2,), lambda a, b: a * b),
    "divide": ((2,), lambda a, b: a / b),
    "mod": ((2,), _js_mod),
    "abs": ((1,), abs),
    "ceil": ((1,), math.ceil),
    "floor": ((1,), math.floor),
    "round": ((1, 2), _js_round),
}


def _math_helper(name: str) -> Callable[..., Number | None]:
    arities, operation = _MATH[name]

    def helper(this: Any, *args: Any) -> Number | None:
        if len(args) not in arities:
            expected = " or ".join(str(n) for n in arities)
            raise ValidationError(f"helper '{name}' takes {expected} argument(s), got {len(args)}")
        operands = [_to_number(arg) for arg in args]
        numbers = [n for n in operands if n is not None]
        # Like a missing variable, a non-numeric operand or x/0 renders as an empty string.
        if len(numbers) != len(operands) or not all(math.isfinite(n) for n in numbers):
            return None
        try:
            return _tidy(operation(*numbers))
        except (ZeroDivisionError, ValueError, OverflowError):
            return None

    return helper


_HELPERS: dict[str, Callable[..., Any]] = {name: _math_helper(name) for name in _MATH}


# --- Elements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    text: str | None = None
    html: str | None = None
    subject: str | None = None


_EMPTY = _Block()
_ElementRenderer = Callable[[Mapping[str, Any], Mapping[str, Any]], _Block]

_SAFE_CSS = re.compile(r"^[#\w\s.,%()-]{1,64}$")
_UNSAFE_SCHEMES = frozenset({"javascript", "vbscript", "data"})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")
_BRAND_COLOR = "#2563eb"
_BLOCK_MARGIN = "margin:0 0 16px;"
_TEXT_STYLES: dict[str, tuple[str, str]] = {
    "text": ("p", _BLOCK_MARGIN),
    "h1": ("h1", "margin:0 0 16px;font-size:28px;line-height:1.25;font-weight:bold;"),
    "h2": ("h2", "margin:0 0 12px;font-size:22px;line-height:1.3;font-weight:bold;"),
    "subtext": ("p", "margin:0 0 16px;font-size:13px;color:#6b7280;"),
}


def _render_node(node: Node, variables: Mapping[str, Any], channel: str) -> _Block:
    kind = node.element["type"]
    if kind == "html" and channel != EMAIL_CHANNEL:
        return _EMPTY
    context = variables if node.loop_scope is None else {**variables, "$": node.loop_scope}
    try:
        return _RENDERERS[kind](node.element, context)
    except ValidationError as exc:
        raise ValidationError(f"{node.path}: {exc.message}") from exc


def _render_meta(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    title = element.get("title")
    if not isinstance(title, str):
        return _EMPTY
    # A subject is a single header line; template whitespace must not leak newlines into it.
    return _Block(subject=" ".join(_fill(title, context).split()))


def _render_text(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    body = _fill(localized_content(element, context) or "", context).strip()
    if not body:
        return _EMPTY
    tag, style = _TEXT_STYLES[element.get("text_style") or "text"]
    style += _align_css(element.get("align")) + _text_css(element, context)
    return _Block(text=body, html=f'<{tag} style="{style}">{_html_text(body)}</{tag}>')


def _render_action(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    label = _fill(localized_content(element, context) or "", context).strip()
    href = _fill(element.get("href") or "", context).strip()
    if not label and not href:
        return _EMPTY
    text = f"{label}: {href}" if label and href else label or href
    style = element.get("style") or "button"
    align = element.get("align") or ("left" if style == "link" else "center")
    color = _css_value(element.get("background_color"), context) or _BRAND_COLOR
    link_css = _action_css(style, color, full_width=align == "full")
    anchor = (
        f'<a href="{_attr(_safe_href(href))}" style="{link_css}" target="_blank">'
        f"{_html_text(label or href)}</a>"
    )
    wrapper = _BLOCK_MARGIN + _align_css("center" if align == "full" else align)
    return _Block(text=text, html=f'<div style="{wrapper}">{anchor}</div>')


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


def _render_divider(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    color = _css_value(element.get("color"), context) or "#e5e7eb"
    rule = f'<hr style="border:0;border-top:1px solid {color};margin:24px 0;">'
    return _Block(text="---", html=rule)


def _render_quote(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    body = _fill(localized_content(element, context) or "", context).strip()
    if not body:
        return _EMPTY
    border = _css_value(element.get("border_color"), context) or "#d1d5db"
    style = (
        f"{_BLOCK_MARGIN}padding:4px 0 4px 16px;border-left:4px solid {border};color:#4b5563;"
        + _align_css(element.get("align"))
    )
    text = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
    return _Block(text=text, html=f'<blockquote style="{style}">{_html_text(body)}</blockquote>')


def _render_image(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    src = _fill(element.get("src") or "", context).strip()
    alt = _fill(element.get("alt_text") or "", context).strip()
    href = _fill(element.get("href") or "", context).strip()
    width = _css_value(element.get("width"), context)
    size = f"width:{width};" if width else ""
    image = (
        f'<img src="{_attr(src)}" alt="{_attr(alt)}" '
        f'style="display:inline-block;max-width:100%;height:auto;border:0;{size}">'
    )
    if href:
        image = f'<a href="{_attr(_safe_href(href))}" target="_blank">{image}</a>'
    wrapper = _BLOCK_MARGIN + _align_css(element.get("align") or "center")
    return _Block(text=alt or None, html=f'<div style="{wrapper}">{image}</div>' if src else None)


def _render_html(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    markup = _fill(localized_content(element, context) or "", context, escape=True).strip()
    return _Block(html=markup or None)


def _render_nothing(element: Mapping[str, Any], context: Mapping[str, Any]) -> _Block:
    # Channel blocks are resolved by selection; one reaching here is a non-matching leftover.
    return _EMPTY


_RENDERERS: dict[str, _ElementRenderer] = {
    "meta": _render_meta,
    "text": _render_text,
    "action": _render_action,
    "divider": _render_divider,
    "quote": _render_quote,
    "image": _render_image,
    "html": _render_html,
    "channel": _render_nothing,
}


def _html_text(text: str) -> str:
    return html_lib.escape(text).replace("\n", "<br>\n")


def _attr(value: str) -> str:
    return html_lib.escape(value, quote=True)


def _safe_href(href: str) -> str:
    # Variables can end up in hrefs; never let recipient data turn a link into script.
    compact = re.sub(r"[\x00-\x20]", "", href).lower()
    match = _SCHEME.match(compact)
    return "#" if match and match.group(1) in _UNSAFE_SCHEMES else href


def _css_value(value: Any, context: Mapping[str, Any]) -> str | None:
    """A style value (colour, width) if it is harmless inside a `style` attribute."""
    if not isinstance(value, str):
        return None
    filled = _fill(value, context).strip()
    return filled if _SAFE_CSS.match(filled) else None


def _align_css(align: Any) -> str:
    if align in ("left", "center", "right"):
        return f"text-align:{align};"
    return ""


def _flag(value: Any) -> bool:
    # The Elemental schema types bold/italic/... as strings ("true"), not booleans.
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0")
    return bool(value)


def _text_css(element: Mapping[str, Any], context: Mapping[str, Any]) -> str:
    css = ""
    color = _css_value(element.get("color"), context)
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


# --- Email document ---------------------------------------------------------------------------

_FONT_STACK = "-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif"
_PRESENTATION = 'role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"'
_EMAIL_HEAD = (
    "<!doctype html>\n"
    '<html>\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
)
# Nested presentation tables center a 600px card in every client, Outlook included.
_EMAIL_OPEN = (
    '<body style="margin:0;padding:0;background-color:#f4f4f5;">\n'
    f'<table {_PRESENTATION} style="background-color:#f4f4f5;">\n'
    '<tr><td align="center" style="padding:24px 12px;">\n'
    f'<table {_PRESENTATION} style="max-width:600px;background-color:#ffffff;">\n'
    f'<tr><td style="padding:32px;font-family:{_FONT_STACK};'
    'font-size:16px;line-height:1.5;color:#111827;">\n'
)
_EMAIL_CLOSE = "\n</td></tr>\n</table>\n</td></tr>\n</table>\n</body>\n</html>\n"


def _email_document(blocks: list[str], subject: str | None) -> str:
    title = f"<title>{html_lib.escape(subject)}</title>\n" if subject else ""
    return f"{_EMAIL_HEAD}{title}</head>\n{_EMAIL_OPEN}{chr(10).join(blocks)}{_EMAIL_CLOSE}"
