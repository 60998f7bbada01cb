"""Courier's ``POST /send`` message: validation and the per-recipient messages it splits into.

Pure: the service turns each per-recipient message into a one-step internal run whose
``send`` step carries it, and the engine's send executor reads it back with the helpers here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from relaybox.domain import delays, delivery
from relaybox.domain.lists import ListPattern
from relaybox.errors import ValidationError

#: Routing when the message has none: the first channel with an address and a provider.
DEFAULT_ROUTING: dict[str, Any] = {"method": "single", "channels": ["email", "webhook"]}
#: The most recipients one request may name (each becomes its own message).
MAX_RECIPIENTS = 1000
#: Recipient keys a user recipient may carry; the profile fields among them address channels.
_ADDRESS_KEYS = ("email", "phone_number", "locale")
#: Courier's direct (profile-less) recipients this version delivers, and the channel each
#: is delivered on: the recipient's settings build the provider (see :func:`direct`).
DIRECT_CHANNELS: Mapping[str, str] = {"webhook": "webhook", "slack": "chat", "pagerduty": "push"}
#: The recipient fields holding credentials: sealed before anything is stored (see
#: ``seal_direct``) and opened only when the provider is built for a call.
DIRECT_SECRETS: Mapping[str, frozenset[str]] = {
    "webhook": frozenset({"authentication", "headers"}),
    "slack": frozenset({"access_token"}),
    "pagerduty": frozenset({"routing_key"}),
}
#: Direct recipients Courier documents that no provider here speaks.
_UNSUPPORTED_DIRECT = {
    "ms_teams": "Microsoft Teams recipients need the Bot Framework, which this version lacks",
}
_SLACK_TARGETS = ("channel", "email", "user_id")
_USER_KEYS = ("user_id", "email", "phone_number")


@dataclass(frozen=True)
class SendPlan:
    """A validated send: one message body per user recipient, the lists to fan out to, and
    when to start sending."""

    messages: list[dict[str, Any]]
    tags: tuple[str, ...]
    trace_id: str | None
    #: ``list_id`` / ``list_pattern`` / ``audience_id`` recipients (that key and "data"): each
    #: becomes one message per subscriber, under the request's one id.
    fan_outs: list[dict[str, Any]] = field(default_factory=list)
    #: The message fields every recipient shares (copied per subscriber by a fan-out).
    shared: dict[str, Any] = field(default_factory=dict)
    #: ``delay`` normalised: {"not_before", "window", "timezone"} (see :func:`send_at`).
    delay: dict[str, Any] | None = None

    @property
    def not_before(self) -> float | None:
        """Epoch seconds before which nothing is sent (``delay``), or None to send at once."""
        return None if self.delay is None else self.delay["not_before"]


def parse(body: Mapping[str, Any], now: float) -> SendPlan:
    """Validate a /send body; raises ValidationError with a message naming the bad field."""
    message = body.get("message")
    if not isinstance(message, dict):
        raise ValidationError("message: Required object")
    recipients, fan_outs = _recipients(message.get("to"))
    template = message.get("template")
    content = message.get("content")
    if template is not None and (not isinstance(template, str) or not template):
        raise ValidationError("message.template: Expected a non-empty string")
    if (template is None) == (content is None):
        raise ValidationError("message: Provide exactly one of template or content")
    if content is not None:
        _check_content(content)
    for name in ("data", "channels", "providers"):
        if message.get(name) is not None and not isinstance(message[name], dict):
            raise ValidationError(f"message.{name}: Expected object")
    brand = message.get("brand_id")
    if brand is not None and not isinstance(brand, str):
        raise ValidationError("message.brand_id: Expected string")
    routing = _routing(message.get("routing"))
    channels = delivery.parse_channels(message.get("channels"))
    tags, trace_id = _metadata(message.get("metadata"))
    delay = _delay(message.get("delay"), now)
    shared = {
        "template": template,
        "content": content,
        "data": dict(message.get("data") or {}),
        "brand_id": brand,
        "routing": routing,
        "channels": channels,
        "providers": delivery.parse_providers(message.get("providers")),
        "timeout": delivery.parse_timeout(message.get("timeout")),
        "expiry": delivery.parse_expiry(message.get("expiry")),
    }
    bodies = [{"to": to, **shared} for to in recipients]
    return SendPlan(
        messages=bodies,
        tags=tags,
        trace_id=trace_id,
        fan_outs=fan_outs,
        shared=shared,
        delay=delay,
    )


def send_at(
    delay: Mapping[str, Any] | None,
    to: Mapping[str, Any],
    profile: Mapping[str, Any],
    now: float,
) -> float | None:
    """When one recipient's message may be sent (None: at once).

    A delivery window is read in ``delay.timezone``, else the recipient's ``timezone``, else
    the stored profile's ``timezone`` (a bad one there falls back: it is not this request's
    fault), else UTC.
    """
    if delay is None:
        return None
    window = delay.get("window")
    if window is None:
        not_before = delay.get("not_before")
        return None if not_before is None else float(not_before)
    zone = UTC
    for name in (delay.get("timezone"), to.get("timezone"), profile.get("timezone")):
        if isinstance(name, str) and name:
            try:
                zone = delays.parse_zone(name)  # type: ignore[assignment]
                break
            except ValidationError:
                continue
    return delays.next_in_window(window, now, zone)


def recipient_id(to: Mapping[str, Any]) -> str | None:
    """What Courier shows as a message's recipient: the user id, else the address (for a
    direct recipient: the webhook's URL without credentials or query, the Slack target)."""
    for key in ("user_id", "email", "phone_number"):
        value = to.get(key)
        if isinstance(value, str) and value:
            return value
    found = direct(to)
    if found is None:
        return None
    kind, settings = found
    if kind == "webhook":
        parts = urlsplit(str(settings.get("url", "")))
        host = parts.netloc.rpartition("@")[2]
        return f"{parts.scheme}://{host}{parts.path}"
    return next((str(settings[k]) for k in _SLACK_TARGETS if settings.get(k)), kind)


def supplied_profile(to: Mapping[str, Any]) -> dict[str, Any]:
    """Profile values given on the recipient itself; they win over the stored profile.

    A Slack recipient's target is Courier's ``slack`` profile object, without its token (the
    token goes to the provider built for the recipient, never into a profile)."""
    found = {k: to[k] for k in _ADDRESS_KEYS if to.get(k) is not None}
    slack = to.get("slack")
    if isinstance(slack, Mapping) and direct(to) is not None:
        found["slack"] = {k: slack[k] for k in _SLACK_TARGETS if slack.get(k)}
    return found


def direct(to: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(kind, settings) of a direct recipient (``{"webhook": {...}}``), else None."""
    if any(to.get(k) is not None for k in _USER_KEYS):
        return None
    for kind in DIRECT_CHANNELS:
        settings = to.get(kind)
        if isinstance(settings, Mapping):
            return kind, dict(settings)
    return None


def seal_direct(to: Mapping[str, Any], seal: Callable[[Any], Any]) -> dict[str, Any]:
    """``to`` with a direct recipient's credentials passed through ``seal`` (encryption), so
    neither the stored run nor anything shown from it holds them in plain text."""
    found = direct(to)
    if found is None:
        return dict(to)
    kind, settings = found
    secret = DIRECT_SECRETS[kind]
    sealed = {k: seal(v) if k in secret and v else v for k, v in settings.items()}
    return {**to, kind: sealed}


def _recipients(to: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """User recipients, and list / list_pattern / audience recipients to fan out (told apart by key,
    as the SDK sends no type tag: a user key wins, since a user recipient may carry a
    ``list_id`` of its own)."""
    items = to if isinstance(to, list) else [to]
    if to is None or not items:
        raise ValidationError("message.to: Required recipient or list of recipients")
    if len(items) > MAX_RECIPIENTS:
        raise ValidationError(f"message.to: At most {MAX_RECIPIENTS} recipients per request")
    users: list[dict[str, Any]] = []
    fan_outs: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"message.to[{i}]" if isinstance(to, list) else "message.to"
        if not isinstance(item, dict):
            raise ValidationError(f"{where}: Expected object")
        if item.get("data") is not None and not isinstance(item["data"], dict):
            raise ValidationError(f"{where}.data: Expected object")
        if item.get("timezone") is not None:
            if not isinstance(item["timezone"], str):
                raise ValidationError(f"{where}.timezone: Expected string")
            delays.parse_zone(item["timezone"])
        if any(item.get(k) is not None for k in _USER_KEYS):
            users.append(_user(item, where))
        elif any(item.get(k) is not None for k in DIRECT_CHANNELS):
            users.append(_direct(item, where))
        elif any(item.get(k) is not None for k in ("list_id", "list_pattern", "audience_id")):
            fan_outs.append(_fan_out(item, where))
        else:
            raise ValidationError(_unsupported(item, where))
    return users, fan_outs


def _user(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    for key in (*_USER_KEYS, "locale"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise ValidationError(f"{where}.{key}: Expected string")
    if recipient_id(item) is None:
        raise ValidationError(f"{where}: Provide user_id, email or phone_number")
    return dict(item)


def _unsupported(item: Mapping[str, Any], where: str) -> str:
    kinds = "user_id, email, phone_number, list_id, list_pattern, audience_id, webhook or slack"
    for key, why in _UNSUPPORTED_DIRECT.items():
        if item.get(key) is not None:
            return f"{where}.{key}: {why}; send to {kinds}"
    return f"{where}: Provide {kinds}"


def _direct(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A webhook or Slack recipient, checked field by field (Courier's WebhookProfile and
    SendToSlack* shapes)."""
    kinds = [k for k in DIRECT_CHANNELS if item.get(k) is not None]
    if len(kinds) > 1:
        raise ValidationError(f"{where}: Provide one of {', '.join(kinds)}, not several")
    kind = kinds[0]
    settings = item[kind]
    if not isinstance(settings, dict):
        raise ValidationError(f"{where}.{kind}: Expected object")
    checks = {
        "webhook": _webhook_recipient,
        "slack": _slack_recipient,
        "pagerduty": _pagerduty_recipient,
    }
    checks[kind](settings, f"{where}.{kind}")
    return dict(item)


def _webhook_recipient(hook: Mapping[str, Any], where: str) -> None:
    url = hook.get("url")
    if not isinstance(url, str) or urlsplit(url.strip()).scheme.lower() not in ("http", "https"):
        raise ValidationError(f"{where}.url: Expected an http:// or https:// URL")
    method = hook.get("method")
    if method is not None and method not in ("POST", "PUT"):
        raise ValidationError(f"{where}.method: Expected POST or PUT")
    headers = hook.get("headers")
    if headers is not None and (
        not isinstance(headers, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise ValidationError(f"{where}.headers: Expected an object of strings")
    if hook.get("profile") not in (None, "limited", "expanded"):
        raise ValidationError(f"{where}.profile: Expected limited or expanded")
    auth = hook.get("authentication")
    if auth is None:
        return
    if not isinstance(auth, dict):
        raise ValidationError(f"{where}.authentication: Expected object")
    mode = auth.get("mode", "none")
    needs = {"none": (), "basic": ("username", "password"), "bearer": ("token",)}
    if mode not in needs:
        raise ValidationError(f"{where}.authentication.mode: Expected none, basic or bearer")
    for name in ("username", "password", "token"):
        value = auth.get(name)
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{where}.authentication.{name}: Expected string")
        if name in needs[mode] and not value:
            raise ValidationError(f"{where}.authentication.{name}: Required for {mode}")


def _slack_recipient(slack: Mapping[str, Any], where: str) -> None:
    token = slack.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValidationError(f"{where}.access_token: Required string")
    given = [k for k in _SLACK_TARGETS if slack.get(k) is not None]
    if len(given) != 1:
        raise ValidationError(f"{where}: Provide exactly one of channel, email or user_id")
    if not isinstance(slack[given[0]], str) or not slack[given[0]]:
        raise ValidationError(f"{where}.{given[0]}: Expected a non-empty string")


def _fan_out(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    if item.get("filters") is not None:
        # Refused rather than ignored: ignoring a filter would send to more people.
        raise ValidationError(
            f"{where}.filters: recipient filters are not supported by this version"
        )
    given = [k for k in ("list_id", "list_pattern", "audience_id") if item.get(k) is not None]
    if len(given) > 1:
        raise ValidationError(f"{where}: Provide one of {', '.join(given)}, not several")
    found: dict[str, Any] = {"data": dict(item.get("data") or {})}
    for key in given:
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ValidationError(f"{where}.{key}: Expected a non-empty string")
        if key == "list_pattern" and any(not p for p in ListPattern.parse(value).parts):
            raise ValidationError(f"{where}.list_pattern: empty part in {value!r}")
        found[key] = value
    return found


def _check_content(content: Any) -> None:
    if not isinstance(content, dict):
        raise ValidationError("message.content: Expected object")
    sugar = "title" in content or "body" in content
    if not sugar and not isinstance(content.get("elements"), list):
        raise ValidationError(
            "message.content: Expected {title, body} or {version, elements: [...]}"
        )


def _routing(raw: Any) -> dict[str, Any]:
    if raw is None:
        return DEFAULT_ROUTING
    return delivery.parse_routing(raw)


def _metadata(raw: Any) -> tuple[tuple[str, ...], str | None]:
    if raw is None:
        return (), None
    if not isinstance(raw, dict):
        raise ValidationError("message.metadata: Expected object")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise ValidationError("message.metadata.tags: Expected array of non-empty strings")
    if any("," in t for t in tags):
        raise ValidationError("message.metadata.tags: a tag may not contain a comma")
    trace_id = raw.get("trace_id")
    if trace_id is not None and not isinstance(trace_id, str):
        raise ValidationError("message.metadata.trace_id: Expected string")
    return tuple(dict.fromkeys(tags)), trace_id


def _delay(raw: Any, now: float) -> dict[str, Any] | None:
    """{"not_before": epoch or None, "window": opening hours or None, "timezone": name or None}."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError("message.delay: Expected object")
    duration = raw.get("duration")
    until = raw.get("until")
    zone = raw.get("timezone")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or duration < 0
    ):
        raise ValidationError("message.delay.duration: Expected a non-negative integer (ms)")
    if zone is not None:
        if not isinstance(zone, str):
            raise ValidationError("message.delay.timezone: Expected string")
        delays.parse_zone(zone)
    found: dict[str, Any] = {"not_before": None, "window": None, "timezone": zone}
    if until is not None:
        if not isinstance(until, str):
            raise ValidationError("message.delay.until: Expected an ISO 8601 string or a window")
        try:
            found["not_before"] = max(now, delays.parse_until(until))
        except ValidationError:
            # Not an instant: a delivery window such as "Mo-Fr 09:00-17:00".
            try:
                found["window"] = delays.parse_window(until)
            except ValidationError as exc:
                raise ValidationError(
                    "message.delay.until: Expected an ISO 8601 instant or a delivery window; "
                    + exc.message
                ) from None
        return found
    if duration is None:
        raise ValidationError("message.delay: Provide duration (ms) or until")
    found["not_before"] = now + duration / 1000.0
    return found


def _pagerduty_recipient(pager: Mapping[str, Any], where: str) -> None:
    key = pager.get("routing_key")
    if not isinstance(key, str) or not key:
        raise ValidationError(f"{where}.routing_key: Required string")
    allowed = {
        "event_action": ("trigger", "acknowledge", "resolve"),
        "severity": ("critical", "error", "warning", "info"),
    }
    for name, values in allowed.items():
        if pager.get(name) is not None and pager[name] not in values:
            raise ValidationError(f"{where}.{name}: Expected one of {', '.join(values)}")
    if pager.get("source") is not None and not isinstance(pager["source"], str):
        raise ValidationError(f"{where}.source: Expected string")
