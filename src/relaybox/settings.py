"""Configuration, parsed once at the edge; the only module that reads the environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAYBOX_", extra="ignore")

    database_url: str = "sqlite:///./relaybox.db"
    #: A key accepted for the default workspace (registered, hashed, at start).
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576
    #: Also serve the API under this path prefix (e.g. "/courier" for a SDK base URL
    #: of http://host:8080/courier).
    base_path: str = ""
    #: Hosts, IPs or CIDRs that outbound HTTP (webhooks, fetch-data) may reach even though
    #: they are private or loopback, e.g. "127.0.0.1,10.0.0.0/8".
    outbound_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The Slack Web API that direct Slack recipients (``to: {"slack": {...}}``) are sent
    #: through; tests point it at a local fake.
    slack_api_base: str = "https://slack.com/api"
    #: The PagerDuty Events API (v2) that direct PagerDuty recipients are sent to.
    pagerduty_api_base: str = "https://events.pagerduty.com"
    #: Apply pending database migrations when a process starts.
    migrate: bool = True
    lease_seconds: float = 60.0
    concurrency: int = 64
    log_level: str = "info"
    #: Signs the web console's session cookies. Unset: a random key per process, so console
    #: sessions end on restart and processes sharing a database do not share sessions.
    #: A key derived from it also encrypts provider secrets (unset: a key generated once and
    #: kept in the database; see providers/secrets.py).
    secret_key: str | None = None
    #: Lets an operator sign in to the console with a password instead of an API key.
    admin_password: str | None = None
    #: The same as a PBKDF2 hash (``relaybox hash-password``); wins over ``admin_password``.
    admin_password_hash: str | None = None

    @field_validator("outbound_allow", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
