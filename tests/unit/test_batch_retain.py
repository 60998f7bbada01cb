"""add-to-batch field parsing and the retain / category shaping of data.batch."""

from __future__ import annotations

from typing import Any

import pytest

from relaybox.engine.steps.add_to_batch import _batch, _parse
from relaybox.errors import ValidationError
from relaybox.storage.base import BatchItem

ITEMS = [
    BatchItem(1, "a", {"s": 3}),
    BatchItem(2, "b", {"s": 9}),
    BatchItem(3, "a", {"s": "n/a"}),
    BatchItem(4, "a", {"s": 1}),
]


def spec(**retain: Any) -> dict[str, Any]:
    return {"batch_key": "k", "wait_period": "PT1M", "retain": retain}


@pytest.mark.parametrize(
    ("retain", "expected"),
    [
        ({"type": "first", "count": 2}, [{"s": 3}, {"s": 9}]),
        ({"type": "last", "count": 2}, [{"s": "n/a"}, {"s": 1}]),
        ({"type": "highest", "count": 2, "sort_key": "s"}, [{"s": 9}, {"s": 3}]),
        (
            {"type": "lowest", "count": 4, "sort_key": "s"},
            [{"s": 1}, {"s": 3}, {"s": 9}, {"s": "n/a"}],
        ),
    ],
)
def test_retain_keeps_the_documented_items(retain: dict[str, Any], expected: list[Any]) -> None:
    """first/last keep arrival order; highest/lowest rank numeric sort values, others last."""
    assert _batch(ITEMS, 4, _parse(spec(**retain))) == {"count": 4, "items": expected}


def test_category_key_groups_items_with_their_own_counts() -> None:
    """With category_key each category gets its own {count, items}."""
    shaped = _batch(ITEMS, 4, _parse({**spec(count=1), "category_key": "x"}))
    assert shaped == {
        "a": {"count": 3, "items": [{"s": 3}]},
        "b": {"count": 1, "items": [{"s": 9}]},
    }


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"wait_period": "PT1M"}, "batch_key"),
        ({"batch_key": "k", "wait_period": "whenever"}, "wait_period: Invalid"),
        ({"batch_key": "k", "wait_period": "PT1M", "max_items": 0}, "max_items"),
        ({**spec(type="middle")}, "retain.type"),
        ({**spec(count=0)}, "retain.count"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(raw: dict[str, Any], error: str) -> None:
    """Each invalid field is reported by name."""
    with pytest.raises(ValidationError, match=error):
        _parse(raw)


def test_max_wait_defaults_to_and_is_capped_at_sixty_days() -> None:
    """Without max_wait_period (or with a longer one) the cap is Courier's 60 days."""
    assert _parse(spec()).max_wait == 60 * 86_400.0
    assert _parse({**spec(), "max_wait_period": "P90D"}).max_wait == 60 * 86_400.0
