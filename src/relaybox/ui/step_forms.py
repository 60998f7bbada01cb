"""The visual designer's form for each step type, as data the page's script renders.

Only the *shape* of each form lives here (which fields, their labels and input kinds):
validation is the API's own (``domain.automation`` through ``AutomationService.put_draft``),
so the designer accepts exactly what ``PUT /automations/{id}`` accepts. ``name`` is a dotted
path into the step (``webhook.url``); empty inputs are left out of the step.
"""

from __future__ import annotations

import re
from typing import Any

from relaybox.domain.merge import STRATEGIES
from relaybox.engine.steps.add_to_batch import RETAIN_TYPES

# A blank first option: empty inputs are left out of the step.
MERGE = ["", *STRATEGIES]
RETAIN = ["", *RETAIN_TYPES]


def field(
    name: str, label: str, kind: str = "text", help: str = "", **extra: Any
) -> dict[str, Any]:
    return {"name": name, "label": label, "kind": kind, "help": help, **extra}


FORMS: dict[str, list[dict[str, Any]]] = {
    "send": [
        field("template", "Template", help="Template id or alias (published)."),
        field("recipient", "Recipient", help="User id; empty: the run's recipient."),
        field("brand", "Brand"),
        field("data", "Data", "json", "JSON object merged into the template's data."),
        field("profile", "Profile", "json", 'JSON object, e.g. {"email": "a@b.c"}.'),
    ],
    "delay": [
        field("duration", "Duration", help='e.g. "2 seconds", "5 minutes", "PT2H".'),
        field("until", "Until", help="ISO 8601 time, e.g. 20260408T080910 (UTC)."),
    ],
    "cancel": [field("cancelation_token", "Cancelation token", required=True)],
    "fetch-data": [
        field("webhook.url", "URL", required=True),
        field(
            "webhook.method", "Method", "select", options=["GET", "POST", "PUT", "PATCH", "DELETE"]
        ),
        field("webhook.headers", "Headers", "json"),
        field("webhook.params", "Query parameters", "json"),
        field("webhook.body", "Body", "json"),
        field("merge_strategy", "Merge strategy", "select", options=MERGE),
    ],
    "update-profile": [
        field("profile", "Profile", "json", "JSON object to merge.", required=True),
        field("recipient_id", "User id", help="Empty: the run's recipient."),
        field("merge", "Merge", "select", options=MERGE),
    ],
    "get-profile": [
        field("user_id", "User id", help="Empty: the run's recipient."),
        field("path", "Into", help='"profile" (default) or "data.<field>".'),
        field("merge_strategy", "Merge strategy", "select", options=MERGE),
    ],
    "subscribe": [
        field("list_id", "List id", required=True),
        field("recipient_id", "User id", help="Empty: the run's recipient."),
    ],
    "invoke": [
        field("template", "Automation", help="Saved automation id or alias.", required=True),
        field("context", "Context", "json", "Empty: the parent run's context."),
    ],
    "send-list": [
        field("list", "List id"),
        field("list_pattern", "List pattern", help="e.g. team.*.admins"),
        field("template", "Template"),
        field("brand", "Brand"),
        field("data", "Data", "json"),
    ],
    "add-to-batch": [
        field("batch_key", "Batch key", help="e.g. ${data.user_id}"),
        field("wait_period", "Wait period", help='Inactivity before release, e.g. "1 hour".'),
        field("max_wait_period", "Max wait period"),
        field("max_items", "Max items", "number"),
        field("retain.type", "Retain", "select", options=RETAIN),
        field("retain.count", "Retain count", "number"),
        field("retain.sort_key", "Sort key"),
        field("category_key", "Category key"),
    ],
    "throttle": [
        field("max_allowed", "Max allowed", "number"),
        field("period", "Period", help='e.g. "1 hour" or PT1H.'),
        field("scope", "Scope", "select", options=["", "user", "global"]),
        field("throttle_key", "Throttle key", help="Dynamic key; overrides the scope."),
    ],
}

#: Every step type gets these after its own fields.
COMMON = [
    field("ref", "Ref", help="Name this step's outcome for later conditions: refs.<name>."),
    field(
        "if", "Condition (if)", "condition", "JavaScript over data, profile, refs…; false skips."
    ),
]


def _path(key: str) -> re.Pattern[str]:
    return re.compile(key + r"\[(\d+)\](?:\.([A-Za-z0-9_.\-]+))?")


def error_location(message: str, key: str = "steps") -> tuple[int | None, str | None]:
    """The item index and field a validation message names (``body.steps[1].duration: …``).

    ``key`` is the list's name ("steps", or "elements" for template content). Returns
    (None, None) when the message names no item: it is then shown for the whole form.
    """
    match = _path(key).search(message)
    if match is None:
        return None, None
    return int(match[1]), match[2]


def field_message(message: str, key: str = "steps") -> str:
    """The message without its ``body.steps[1].x:`` prefix, for display next to the field."""
    match = _path(key).search(message)
    if match is None:
        return message
    rest = message[match.end() :].lstrip(": ").strip()
    return rest or message


def locate(message: str | None, key: str = "steps") -> tuple[int | None, str | None, str | None]:
    """Item index, field and the message to show beside it; all None when no item is named."""
    index, name = error_location(message or "", key)
    if index is None or message is None:
        return None, None, None
    return index, name, field_message(message, key)
