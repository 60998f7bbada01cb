"""Provider secrets encrypted at rest with one server-wide key (Fernet: AES-128-CBC + HMAC).

A sealed value is the string ``"rbx:sealed:v1:" + Fernet token`` over the JSON of the plain
value, so any JSON value (a token, a service-account object, a list of URLs) can be sealed
and a reader can tell sealed values from plaintext ones written before encryption existed:
those are read through unchanged and sealed on the configuration's next write.

Keys, in order (the first encrypts, every one decrypts):

1. derived from ``RELAYBOX_SECRET_KEY`` when it is set (HKDF-SHA256, so the console's cookie
   key and this key never coincide);
2. a random key generated once and kept in the database (``server_secrets``). Without
   ``RELAYBOX_SECRET_KEY`` it is created on first start, so one-command start works; with it,
   an existing one stays readable, so setting the variable later loses nothing.

The database key protects against the API, logs, dumps of single tables and rows copied
around; it cannot protect against theft of the whole database. Operators who need that set
``RELAYBOX_SECRET_KEY`` and keep it outside the database.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from relaybox.errors import ValidationError

SEALED_PREFIX = "rbx:sealed:v1:"
#: The ``server_secrets`` row holding the generated key.
STORED_KEY_NAME = "provider-settings-key"
_HKDF_INFO = b"relaybox provider settings encryption v1"

#: Looks up a server secret by name; with a candidate, stores it first if none exists yet and
#: returns whichever value won.
ServerSecret = Callable[[str, str | None], Awaitable[str | None]]


class UndecryptableSecret(ValidationError):
    """A sealed provider secret cannot be decrypted with the server's keys."""


def derive_key(secret: str) -> bytes:
    """The Fernet key for a configured ``RELAYBOX_SECRET_KEY``."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode("utf-8")))


async def server_keys(configured: str | None, server_secret: ServerSecret) -> list[bytes]:
    """The keys to install, the encrypting one first (see the module docstring)."""
    keys: list[bytes] = []
    if configured:
        keys.append(derive_key(configured))
    candidate = None if configured else Fernet.generate_key().decode("ascii")
    stored = await server_secret(STORED_KEY_NAME, candidate)
    if stored:
        keys.append(stored.encode("ascii"))
    return keys


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


class SecretBox:
    """Seals and opens single settings values; keys are installed once the store is open."""

    def __init__(self, keys: Sequence[bytes] = ()) -> None:
        self._fernet: MultiFernet | None = None
        if keys:
            self.install(keys)

    def install(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def _cipher(self) -> MultiFernet:
        if self._fernet is None:
            raise RuntimeError("SecretBox used before its keys were installed")
        return self._fernet

    def seal(self, value: Any) -> Any:
        """``value`` encrypted; empty values and already sealed ones are returned as they are."""
        if value is None or value == "" or is_sealed(value):
            return value
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return SEALED_PREFIX + self._cipher().encrypt(plain).decode("ascii")

    def open(self, value: Any) -> Any:
        """The plain value of a sealed one; anything else (older plaintext rows) as it is.

        Raises:
            UndecryptableSecret: sealed with a key this server does not have.
        """
        if not is_sealed(value):
            return value
        token = value[len(SEALED_PREFIX) :].encode("ascii")
        try:
            return json.loads(self._cipher().decrypt(token))
        except InvalidToken:
            raise UndecryptableSecret(
                "a provider secret cannot be decrypted: it was sealed with another server key "
                "(RELAYBOX_SECRET_KEY changed, or the database's generated key was lost); "
                "set the provider's secret settings again"
            ) from None
