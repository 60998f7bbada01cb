"""The designer's step forms: one per API action, and API messages mapped to their field."""

from __future__ import annotations

import pytest

from relaybox.domain.automation import KNOWN_ACTIONS, parse_steps
from relaybox.errors import ValidationError
from relaybox.ui import element_forms, step_forms


def test_every_action_has_a_form_with_ref_and_condition() -> None:
    """Each action the API accepts has a form; every form field has a name, label and kind."""
    assert set(step_forms.FORMS) == KNOWN_ACTIONS
    kinds = {"text", "longtext", "number", "json", "select", "condition"}
    everything = [*step_forms.FORMS.values(), step_forms.COMMON]
    everything += [*element_forms.FORMS.values(), element_forms.COMMON]
    for fields in everything:
        for field in fields:
            assert field["name"]
            assert field["label"]
            assert field["kind"] in kinds
    assert [f["name"] for f in step_forms.COMMON] == ["ref", "if"]


@pytest.mark.parametrize(
    ("steps", "index", "field"),
    [
        ([{"action": "send"}, {"action": "cancel"}], 1, "cancelation_token"),
        ([{"action": "delay", "duration": "soon"}], 0, None),
        ([{"action": "send", "if": 3}], 0, "if"),
        ([{"action": "fetch-data"}], 0, "webhook"),
    ],
)
def test_api_validation_messages_point_at_the_step_and_field(
    steps: list[dict[str, object]], index: int, field: str | None
) -> None:
    """The API's own message for a bad step names the step index and (when known) the field."""
    with pytest.raises(ValidationError) as caught:
        parse_steps(steps, where="body.steps")
    message = caught.value.message
    assert step_forms.error_location(message) == (index, field)
    assert not step_forms.field_message(message).startswith("body.")


def test_messages_without_a_step_stay_whole() -> None:
    """A message about the whole body has no location and is shown unchanged."""
    assert step_forms.error_location("body.steps: Required") == (None, None)
    assert step_forms.field_message("name: Expected string") == "name: Expected string"
