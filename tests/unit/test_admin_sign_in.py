"""Admin-password sign-in: constant-time checks of a plain or hashed password, rate-limited."""

from __future__ import annotations

import io

import pytest

from relaybox.cli.main import main
from relaybox.clock import FrozenClock
from relaybox.errors import ValidationError
from relaybox.services.admin import (
    AdminSignIn,
    FailureLimiter,
    TooManyAttempts,
    check_password,
    hash_password,
)


def test_hashed_password_checks_only_the_right_password() -> None:
    """A PBKDF2 hash accepts its password and nothing else; a malformed hash accepts nothing."""
    hashed = hash_password("correct horse", iterations=1_000)
    assert hashed.startswith("pbkdf2_sha256$1000$")
    assert check_password("correct horse", plain=None, hashed=hashed)
    assert not check_password("correct horsE", plain=None, hashed=hashed)
    assert not check_password("correct horse", plain=None, hashed="pbkdf2_sha256$x$y$z")
    assert hash_password("same", iterations=1_000) != hash_password("same", iterations=1_000)


def test_plain_password_and_no_password() -> None:
    """A plain password matches exactly; with nothing configured no password is accepted."""
    assert check_password("s3cret", plain="s3cret", hashed=None)
    assert not check_password("s3cre", plain="s3cret", hashed=None)
    assert not check_password("", plain=None, hashed=None)
    assert not AdminSignIn(clock=FrozenClock()).sign_in("c", "", "default")


def test_failures_lock_the_client_out_until_the_window_passes() -> None:
    """The sixth try within the window is refused unchecked (even with the right password)."""
    clock = FrozenClock()
    admin = AdminSignIn(
        clock=clock, password="pw", limiter=FailureLimiter(clock=clock, limit=5, window=60)
    )
    for _ in range(5):
        assert admin.sign_in("10.0.0.1", "wrong", "default") is False
        clock.advance(1)
    with pytest.raises(TooManyAttempts) as refused:
        admin.sign_in("10.0.0.1", "pw", "default")
    assert refused.value.retry_after == pytest.approx(55)
    assert admin.sign_in("10.0.0.2", "pw", "default") is True, "other clients are not locked"
    clock.advance(55)
    assert admin.sign_in("10.0.0.1", "pw", "default") is True
    # Success forgets the failures: five more are allowed again.
    for _ in range(5):
        assert admin.sign_in("10.0.0.1", "wrong", "default") is False
    with pytest.raises(TooManyAttempts):
        admin.sign_in("10.0.0.1", "pw", "default")


def test_limiter_memory_is_bounded() -> None:
    """Past max_clients the oldest client's failures are forgotten."""
    clock = FrozenClock()
    limiter = FailureLimiter(clock=clock, limit=1, window=60, max_clients=2)
    for client in ("a", "b", "c"):
        limiter.failed(client)
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("c") == 60


def test_workspace_name_is_checked_and_bad_hash_setting_is_refused() -> None:
    """A malformed workspace is a validation error; a malformed hash setting fails at start."""
    admin = AdminSignIn(clock=FrozenClock(), password="pw")
    with pytest.raises(ValidationError):
        admin.sign_in("c", "pw", "no spaces")
    with pytest.raises(ValueError, match="pbkdf2_sha256"):
        AdminSignIn(clock=FrozenClock(), password_hash="plain-text-by-mistake")


def test_cli_hash_password_prints_a_hash_that_checks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relaybox hash-password` reads the password from stdin and prints a usable hash."""
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert main(["hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert check_password("from stdin", plain=None, hashed=printed)
    assert AdminSignIn(clock=FrozenClock(), password_hash=printed).enabled
