"""The provider catalog describes exactly the settings each provider parses."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from relaybox.errors import ValidationError
from relaybox.providers import apn, apprise_bridge, catalog, fcm, slack, smtp, twilio, webhook
from relaybox.providers.registry import KNOWN_PROVIDERS, validate_settings

PARSED_FIELDS = {
    "apn": apn._FIELDS,
    "apprise": apprise_bridge._FIELDS,
    "fcm": fcm._FIELDS,
    "inbox": frozenset(),
    "slack": slack._FIELDS,
    "smtp": smtp._FIELDS,
    "twilio": twilio._FIELDS,
    "webhook": webhook._FIELDS,
}


def test_every_known_provider_is_described_with_the_fields_it_parses() -> None:
    """One catalog entry per provider key; its settings are the fields the parser accepts."""
    assert sorted(e["provider"] for e in catalog.ENTRIES) == sorted(KNOWN_PROVIDERS)
    for entry in catalog.ENTRIES:
        assert set(entry["settings"]) == PARSED_FIELDS[entry["provider"]], entry["provider"]


def _pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


#: A valid configuration of each provider, using every required field.
SAMPLES: dict[str, dict[str, Any]] = {
    "apn": {
        "key_id": "K",
        "team_id": "T",
        "bundle_id": "com.example",
        "private_key": _pem(ec.generate_private_key(ec.SECP256R1())),
    },
    "apprise": {"urls": "json://example.com/notify"},
    "fcm": {
        "service_account": {
            "project_id": "p",
            "client_email": "a@p.iam.gserviceaccount.com",
            "private_key": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        }
    },
    "inbox": {},
    "slack": {"token": "xoxb-1"},
    "smtp": {"host": "smtp.example.com", "from_address": "a@example.com"},
    "twilio": {"account_sid": "AC1", "auth_token": "t", "from_number": "+1"},
    "webhook": {"url": "https://example.com/hook"},
}


@pytest.mark.parametrize("entry", catalog.ENTRIES, ids=lambda e: str(e["provider"]))
def test_each_required_field_is_really_required(entry: dict[str, Any]) -> None:
    """A sample with every required field is valid; without any one of them it is refused."""
    key = entry["provider"]
    validate_settings(key, SAMPLES[key])
    for name, described in entry["settings"].items():
        if described["required"]:
            without = {k: v for k, v in SAMPLES[key].items() if k != name}
            with pytest.raises(ValidationError, match=name):
                validate_settings(key, without)


def test_filters() -> None:
    """channel is exact, keys a comma list, name a case-insensitive substring."""
    assert {e["provider"] for e in catalog.entries(channel="push")} == {"apn", "apprise", "fcm"}
    assert [e["provider"] for e in catalog.entries(keys="twilio, slack")] == ["slack", "twilio"]
    assert [e["provider"] for e in catalog.entries(name="FIREBASE")] == ["fcm"]
    assert catalog.entries(channel="sms", keys="slack") == []
