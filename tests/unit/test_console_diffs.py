"""The console's version diff: stable JSON lines, marked added, removed, unchanged."""

from __future__ import annotations

from relaybox.ui import diffs


def test_unified_diff_marks_changed_lines_and_ignores_key_order() -> None:
    """A changed value shows as one removed and one added line inside a hunk."""
    old = {"steps": [{"action": "delay", "duration": "2 seconds"}], "name": "A"}
    new = {"name": "A", "steps": [{"duration": "5 seconds", "action": "delay"}]}
    lines = diffs.unified(old, new)
    kinds = [(line.kind, line.text.strip()) for line in lines]
    assert kinds[0][0] == "hunk"
    assert ("del", '"duration": "2 seconds"') in kinds
    assert ("add", '"duration": "5 seconds"') in kinds
    assert ("same", '"action": "delay",') in kinds
    assert diffs.unified(old, {"steps": old["steps"], "name": "A"}) == []
