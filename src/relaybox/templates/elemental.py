"""Courier Elemental content: structural validation, channel selection and control flow.

This module decides *which* elements a message shows on a channel and in what order (sugar
expansion, `channel` blocks, `channels` filters, `if` conditions, `loop` expansion, `locales`).
It knows nothing about Handlebars or HTML; `relaybox.templates.render` turns the selected
nodes into text and HTML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relaybox.errors import ValidationError
from relaybox.templates.conditions import JsConditions, check_syntax

__all__ = [
    "ELEMENT_TYPES",
    "TRANSLATABLE_FIELDS",
    "Node",
    "channel_raw",
    "condition_holds",
    "is_truthy",
    "localized",
    "resolve_path",
    "select_nodes",
    "template_sources",
    "validate_structure",
]

ELEMENT_TYPES = frozenset(
    {"meta", "text", "action", "divider", "quote", "image", "html", "channel"}
)

_ENUMS: dict[str, frozenset[str]] = {
    "text_style": frozenset({"text", "h1", "h2", "subtext"}),
    "style": frozenset({"button", "secondary", "tertiary", "link"}),
    "align": frozenset({"left", "center", "right", "full"}),
}
_REQUIRED_STRINGS: dict[str, tuple[str, ...]] = {
    "text": ("content",),
    "action": ("content", "href"),
    "quote": ("content",),
    "image": ("src",),
    "html": ("content",),
    "channel": ("channel",),
}
_OPTIONAL_STRINGS = ("title", "href", "alt_text", "if", "loop", "width", "color")
#: Fields a `locales` entry may replace (the text a recipient reads or follows).
TRANSLATABLE_FIELDS = ("content", "title", "href", "src", "alt_text")
# Fields whose values are Handlebars templates.
_TEMPLATE_FIELDS = ("title", "content", "href", "src", "alt_text")

# Only the simplest JS expressions are understood: `path`, `!path` and the literal keywords.
_SIMPLE_CONDITION = re.compile(r"^\s*(!?)\s*([A-Za-z_$][\w$]*(?:\.[\w$]+)*)\s*$")
_JS_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None, "undefined": None}


@dataclass(frozen=True)
class Node:
    """One element to render: a single loop iteration that passed `channels` and `if`."""

    element: Mapping[str, Any]
    path: str
    # `{"item": ..., "index": ...}` when the node comes from a `loop`, exposed to templates as `$`.
    loop_scope: Mapping[str, Any] | None = None


def validate_structure(content: Any) -> None:
    """Raise `ValidationError` unless `content` is sugar and/or an Elemental document."""
    if not isinstance(content, Mapping):
        raise ValidationError("content must be an object with 'elements' or 'title'/'body'")
    for key in ("title", "body", "version"):
        if key in content and not isinstance(content[key], str):
            raise ValidationError(f"content.{key} must be a string")
    if "elements" not in content and "title" not in content and "body" not in content:
        raise ValidationError("content must have 'elements' or sugar 'title'/'body'")
    if "elements" in content:
        _validate_elements(content["elements"], "elements", allow_channel=True)


def _validate_elements(elements: Any, path: str, *, allow_channel: bool) -> None:
    if not isinstance(elements, list):
        raise ValidationError(f"{path} must be a list of elements")
    for index, element in enumerate(elements):
        _validate_element(element, f"{path}[{index}]", allow_channel=allow_channel)


def _validate_element(element: Any, path: str, *, allow_channel: bool) -> None:
    if not isinstance(element, Mapping):
        raise ValidationError(f"{path} must be an object")
    kind = element.get("type")
    if kind not in ELEMENT_TYPES:
        supported = ", ".join(sorted(ELEMENT_TYPES))
        raise ValidationError(f"{path}.type must be one of {supported}; got {kind!r}")
    where = f"{path} ({kind})"
    for key in _REQUIRED_STRINGS.get(kind, ()):
        if not isinstance(element.get(key), str):
            raise ValidationError(f"{where}: '{key}' is required and must be a string")
    for key in _OPTIONAL_STRINGS:
        if element.get(key) is not None and not isinstance(element[key], str):
            raise ValidationError(f"{where}: '{key}' must be a string")
    for key, allowed in _ENUMS.items():
        if element.get(key) is not None and element[key] not in allowed:
            raise ValidationError(
                f"{where}: '{key}' must be one of {', '.join(sorted(allowed))}; "
                f"got {element[key]!r}"
            )
    condition = element.get("if")
    if isinstance(condition, str) and condition.strip() and not _SIMPLE_CONDITION.match(condition):
        try:
            check_syntax(condition)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc.message}") from None
    _validate_channels(element.get("channels"), where)
    _validate_locales(element.get("locales"), where)
    if kind == "channel":
        _validate_channel_block(element, path, where, allow_channel=allow_channel)


def _validate_channels(channels: Any, where: str) -> None:
    if channels is None:
        return
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise ValidationError(f"{where}: 'channels' must be a list of channel names")


def _validate_locales(locales: Any, where: str) -> None:
    if locales is None:
        return
    if not isinstance(locales, Mapping):
        raise ValidationError(f"{where}: 'locales' must be an object keyed by locale")
    for locale, override in locales.items():
        fields = [k for k in TRANSLATABLE_FIELDS if isinstance(override, Mapping) and k in override]
        if not fields or any(not isinstance(override[k], str) for k in fields):
            raise ValidationError(
                f"{where}: locales[{locale!r}] must set one or more of "
                f"{', '.join(TRANSLATABLE_FIELDS)} as strings"
            )


def _validate_channel_block(
    element: Mapping[str, Any], path: str, where: str, *, allow_channel: bool
) -> None:
    if not allow_channel:
        raise ValidationError(f"{where}: channel elements are only allowed at the top level")
    if "elements" in element:
        _validate_elements(element["elements"], f"{path}.elements", allow_channel=False)
    elif "raw" not in element:
        raise ValidationError(f"{where}: 'elements' (or 'raw') is required")
    if element.get("raw") is not None and not isinstance(element["raw"], Mapping):
        raise ValidationError(f"{where}: 'raw' must be an object")


def template_sources(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every Handlebars source in already-validated content, as (location, source) pairs."""
    for key in ("title", "body"):
        if isinstance(content.get(key), str):
            yield key, content[key]
    yield from _element_sources(content.get("elements", ()), "elements")


def _element_sources(elements: Sequence[Any], path: str) -> Iterator[tuple[str, str]]:
    for index, element in enumerate(elements):
        where = f"{path}[{index}]"
        for key in _TEMPLATE_FIELDS:
            if isinstance(element.get(key), str):
                yield f"{where}.{key}", element[key]
        for locale, override in (element.get("locales") or {}).items():
            for key in _TEMPLATE_FIELDS:
                if isinstance(override.get(key), str):
                    yield f"{where}.locales.{locale}.{key}", override[key]
        if element.get("type") == "channel":
            yield from _element_sources(element.get("elements", ()), f"{where}.elements")
            yield from _raw_sources(element.get("raw"), f"{where}.raw")


def _raw_sources(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _raw_sources(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _raw_sources(item, f"{where}[{index}]")


def _no_deadline() -> None:
    return None


def select_nodes(
    content: Mapping[str, Any],
    *,
    channel: str,
    variables: Mapping[str, Any],
    tick: Callable[[], None] = _no_deadline,
) -> list[Node]:
    """The nodes to render on `channel`, in document order, with control flow applied.

    `tick` runs before each element or loop iteration is considered: each `if` may run
    JavaScript, so a render's time cap has to be checked here, not only once selection is done.
    """
    nodes: list[Node] = []
    js = JsConditions(variables)
    for path, element in _channel_elements(content, channel):
        nodes.extend(_expand(element, path, channel, variables, js, tick))
    return nodes


def _channel_elements(
    content: Mapping[str, Any], channel: str
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The element list for `channel`: its `channel` block, else "default", else the rest."""
    elements: list[Mapping[str, Any]] = list(content.get("elements", ()))
    block = _matching_block(elements, channel)
    if block is not None:
        index, children = block
        for child_index, child in enumerate(children):
            yield f"elements[{index}].elements[{child_index}]", child
        # Document-level titles still apply; they come after the block's own `meta` so that a
        # channel-specific title wins (the first title rendered is the subject).
        if isinstance(content.get("title"), str):
            yield "title", {"type": "meta", "title": content["title"]}
        for index, element in enumerate(elements):
            if element.get("type") == "meta":
                yield f"elements[{index}]", element
        return
    # Sugar reads as a meta + text pair placed before any explicit elements.
    if isinstance(content.get("title"), str):
        yield "title", {"type": "meta", "title": content["title"]}
    if isinstance(content.get("body"), str):
        yield "body", {"type": "text", "content": content["body"]}
    for index, element in enumerate(elements):
        if element.get("type") != "channel":
            yield f"elements[{index}]", element


def _matching_block(
    elements: list[Mapping[str, Any]], channel: str
) -> tuple[int, list[Mapping[str, Any]]] | None:
    found = _block_for(elements, channel)
    return None if found is None else (found[0], list(found[1].get("elements", ())))


def _block_for(
    elements: list[Mapping[str, Any]], channel: str
) -> tuple[int, Mapping[str, Any]] | None:
    blocks = [(i, e) for i, e in enumerate(elements) if e.get("type") == "channel"]
    for wanted in (channel, "default"):
        for index, block in blocks:
            if block.get("channel") == wanted:
                return index, block
    return None


def channel_raw(content: Mapping[str, Any], channel: str) -> Mapping[str, Any] | None:
    """The `raw` payload of the `channel` block that applies to `channel`, if it has one."""
    found = _block_for(list(content.get("elements", ())), channel)
    raw = None if found is None else found[1].get("raw")
    return raw if isinstance(raw, Mapping) else None


def _expand(
    element: Mapping[str, Any],
    path: str,
    channel: str,
    variables: Mapping[str, Any],
    js: JsConditions,
    tick: Callable[[], None],
) -> Iterator[Node]:
    channels = element.get("channels")
    if channels is not None and channel not in channels:
        return
    loop = element.get("loop")
    if not loop:
        tick()
        if condition_holds(element.get("if"), variables, None, js):
            yield Node(element, path)
        return
    items = resolve_path(variables, loop, None)
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        return
    for index, item in enumerate(items):
        tick()
        scope = {"item": item, "index": index}
        # `if` is checked per iteration so a condition may test the current `$.item`.
        if condition_holds(element.get("if"), variables, scope, js):
            yield Node(element, f"{path}[loop {index}]", scope)


def resolve_path(
    variables: Mapping[str, Any], path: str, loop_scope: Mapping[str, Any] | None
) -> Any:
    """Follow a dotted path (`data.user.name`, `$.item.id`, `items.0`); missing is None."""
    segments = path.strip().split(".")
    value: Any = loop_scope if segments[0] == "$" else variables.get(segments[0])
    for segment in segments[1:]:
        if isinstance(value, Mapping):
            value = value.get(segment)
        elif isinstance(value, Sequence) and not isinstance(value, str) and segment.isdigit():
            position = int(segment)
            value = value[position] if position < len(value) else None
        else:
            return None
    return value


def is_truthy(value: Any) -> bool:
    """JavaScript truthiness: empty lists and objects are truthy, 0, "" and null are not."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float):
        return value == value and value != 0  # NaN is falsy
    if isinstance(value, str):
        return value != ""
    return True


def condition_holds(
    expression: str | None,
    variables: Mapping[str, Any],
    loop_scope: Mapping[str, Any] | None,
    js: JsConditions | None = None,
) -> bool:
    """Evaluate an element's `if`: `path` / `!path` here, anything else as JavaScript.

    Raises:
        ValidationError: the JavaScript threw, or exceeded its CPU or memory cap.
    """
    if expression is None or not expression.strip():
        return True
    match = _SIMPLE_CONDITION.match(expression)
    if match is None:
        return (js or JsConditions(variables)).holds(expression, loop_scope)
    negate, path = match.groups()
    if path in _JS_LITERALS:
        value = _JS_LITERALS[path]
    else:
        value = resolve_path(variables, path, loop_scope)
    return is_truthy(value) != bool(negate)


def localized(element: Mapping[str, Any], field: str, variables: Mapping[str, Any]) -> str | None:
    """`element[field]`, replaced by the recipient locale's override of that field if any.

    The locale is `locale` in the variables, else the profile's; "fr-CA" falls back to "fr",
    then to the element's own value.
    """
    base = element.get(field)
    base = base if isinstance(base, str) else None
    locales = element.get("locales")
    locale = _recipient_locale(variables)
    if not isinstance(locales, Mapping) or locale is None:
        return base
    normalized = {_normalize_locale(str(key)): value for key, value in locales.items()}
    wanted = _normalize_locale(locale)
    for key in (wanted, wanted.split("-")[0]):
        override = normalized.get(key)
        if isinstance(override, Mapping) and isinstance(override.get(field), str):
            return str(override[field])
    return base


def _recipient_locale(variables: Mapping[str, Any]) -> str | None:
    locale = variables.get("locale")
    if isinstance(locale, str) and locale:
        return locale
    profile = variables.get("profile")
    if isinstance(profile, Mapping):
        locale = profile.get("locale")
        if isinstance(locale, str) and locale:
            return locale
    return None


def _normalize_locale(locale: str) -> str:
    return locale.strip().lower().replace("_", "-")
