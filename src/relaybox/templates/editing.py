"""Addressable Elemental content: element ids, per-element edits and content checksums.

Courier's template content API addresses elements by id (`PUT /notifications/{id}/elements/
{element_id}`, locale overrides per element id) and reports an MD5 checksum of each element's
translatable content so translation tools can tell what changed. Stored template content
therefore carries an `id` on every element; ids a client supplies are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from relaybox.errors import NotFound, ValidationError
from relaybox.templates.elemental import TRANSLATABLE_FIELDS

__all__ = [
    "DEFAULT_VERSION",
    "TRANSLATABLE_FIELDS",
    "checksums",
    "content_with_checksums",
    "replace_element",
    "set_locale",
    "with_element_ids",
]

#: Elemental's content version when a client leaves it out.
DEFAULT_VERSION = "2022-01-01"
_STRUCTURE = frozenset({"id", "locales", "elements"})


def with_element_ids(content: Mapping[str, Any], new_id: Callable[[], str]) -> dict[str, Any]:
    """A copy of `content` whose every element (nested ones too) has a unique `id`."""
    seen: set[str] = set()

    def walk(elements: Any) -> list[Any]:
        out: list[Any] = []
        for element in elements if isinstance(elements, list) else ():
            if not isinstance(element, Mapping):
                out.append(element)
                continue
            copy = dict(element)
            given = copy.get("id")
            if given is not None and not isinstance(given, str):
                raise ValidationError("element id must be a string")
            if isinstance(given, str) and given in seen:
                raise ValidationError(f'element id "{given}" is used more than once')
            if not given:
                copy["id"] = new_id()
            seen.add(copy["id"])
            if isinstance(copy.get("elements"), list):
                copy["elements"] = walk(copy["elements"])
            out.append(copy)
        return out

    result = dict(content)
    if "elements" in result:
        result["elements"] = walk(result["elements"])
    return result


def _elements(content: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    stack = list(reversed(content.get("elements") or []))
    while stack:
        element = stack.pop()
        if isinstance(element, dict):
            yield element
            stack.extend(reversed(element.get("elements") or []))


def _find(content: Mapping[str, Any], element_id: str, template_id: str) -> dict[str, Any]:
    for element in _elements(content):
        if element.get("id") == element_id:
            return element
    raise NotFound(f"Element {element_id} not found in template {template_id}")


def replace_element(
    content: Mapping[str, Any], element_id: str, new: Mapping[str, Any], template_id: str
) -> dict[str, Any]:
    """A copy of `content` with element `element_id` replaced by `new` (404 if absent).

    A channel element keeps its children unless `new` brings its own `elements`, and every
    element keeps its `locales` unless replaced, so editing a block's settings or the base
    text does not throw away nested content or translations.
    """
    copy: dict[str, Any] = orjson.loads(orjson.dumps(content))
    target = _find(copy, element_id, template_id)
    kept: dict[str, Any] = {
        k: target[k] for k in ("elements", "locales") if k in target and k not in new
    }
    target.clear()
    target.update({**new, **kept, "id": element_id})
    return copy


def set_locale(
    content: Mapping[str, Any],
    locale: str,
    overrides: list[Mapping[str, Any]],
    template_id: str,
) -> dict[str, Any]:
    """A copy of `content` with `locales[locale]` set on each element an override names."""
    copy: dict[str, Any] = orjson.loads(orjson.dumps(content))
    for index, override in enumerate(overrides):
        element_id = override.get("id")
        if not isinstance(element_id, str) or not element_id:
            raise ValidationError(f"elements[{index}].id: Required")
        fields = {k: v for k, v in override.items() if k != "id"}
        bad = [
            k for k, v in fields.items() if k not in TRANSLATABLE_FIELDS or not isinstance(v, str)
        ]
        if bad or not fields:
            allowed = ", ".join(TRANSLATABLE_FIELDS)
            raise ValidationError(
                f"elements[{index}]: a locale override sets one or more of {allowed} (strings)"
            )
        target = _find(copy, element_id, template_id)
        target["locales"] = {**(target.get("locales") or {}), locale: fields}
    return copy


def _md5(value: Any) -> str:
    return hashlib.md5(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _checksum(element: Mapping[str, Any]) -> str:
    return _md5({k: v for k, v in element.items() if k not in _STRUCTURE})


def content_with_checksums(content: Mapping[str, Any]) -> dict[str, Any]:
    """Courier's content response: every element with its `checksum`, locales as checksums."""

    def present(element: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in element.items() if k != "locales"}
        out["checksum"] = _checksum(element)
        if isinstance(element.get("locales"), Mapping):
            out["locales"] = {
                name: {**dict(value), "checksum": _md5(value)}
                for name, value in element["locales"].items()
            }
        if isinstance(element.get("elements"), list):
            out["elements"] = [present(e) for e in element["elements"] if isinstance(e, Mapping)]
        return out

    return {
        "version": content.get("version") or DEFAULT_VERSION,
        "elements": [present(e) for e in content.get("elements") or [] if isinstance(e, Mapping)],
    }


def checksums(content: Mapping[str, Any]) -> list[dict[str, str]]:
    """`[{id, checksum}]` for every element, nested ones included, in document order."""
    return [
        {"id": str(e.get("id")), "checksum": _checksum(e)}
        for e in _elements(content)
        if e.get("id")
    ]
