"""The console's signed session cookie and CSRF check."""

from __future__ import annotations

import pytest

from relaybox.ui.session import MAX_AGE_SECONDS, Session, Signer

SECRET = b"0123456789abcdef-console-test"
NOW = 1_800_000_000.0


def test_a_session_round_trips_through_its_cookie():
    """What is dumped loads back with the same workspace, token and issue time."""
    signer = Signer(SECRET)
    cookie = signer.dump(Session(csrf="tok", workspace="ws-1", issued_at=NOW))
    loaded = signer.load(cookie, NOW + 5)
    assert loaded is not None
    assert (loaded.csrf, loaded.workspace, loaded.issued_at) == ("tok", "ws-1", NOW)
    assert loaded.dirty is False


def test_an_anonymous_session_keeps_no_workspace():
    """A pre-sign-in session (CSRF token only) loads with workspace None."""
    signer = Signer(SECRET)
    loaded = signer.load(signer.dump(Session(csrf="tok", issued_at=NOW)), NOW)
    assert loaded is not None
    assert loaded.workspace is None


def test_a_tampered_payload_is_refused():
    """Changing the workspace in the payload breaks the signature."""
    signer = Signer(SECRET)
    cookie = signer.dump(Session(csrf="tok", workspace="ws-1", issued_at=NOW))
    forged = Signer(SECRET).dump(Session(csrf="tok", workspace="ws-2", issued_at=NOW))
    spliced = forged.split(".")[0] + "." + cookie.split(".")[1]
    assert signer.load(spliced, NOW) is None


def test_a_cookie_signed_with_another_secret_is_refused():
    """A cookie from another process (another secret) is not accepted."""
    other = Signer(b"another-secret-of-enough-length")
    assert Signer(SECRET).load(other.dump(Session(workspace="ws", issued_at=NOW)), NOW) is None


def test_an_expired_session_is_refused():
    """Past MAX_AGE_SECONDS the cookie no longer signs anyone in."""
    signer = Signer(SECRET)
    cookie = signer.dump(Session(workspace="ws", issued_at=NOW))
    assert signer.load(cookie, NOW + MAX_AGE_SECONDS - 1) is not None
    assert signer.load(cookie, NOW + MAX_AGE_SECONDS + 1) is None


@pytest.mark.parametrize("cookie", [None, "", "abc", "a.b.c", "!!!.???", "e30.AAAA", "bnVsbA.x"])
def test_garbage_cookies_load_as_no_session(cookie: str | None):
    """Missing, malformed or unsigned cookies load as None instead of raising."""
    assert Signer(SECRET).load(cookie, NOW) is None


def test_a_short_secret_is_refused():
    """Secrets under 16 bytes are too weak to sign sessions."""
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")


def test_csrf_check_needs_the_exact_token():
    """Only the session's own token passes; missing, empty and wrong tokens fail."""
    session = Session(csrf="expected-token")
    assert session.check_csrf("expected-token")
    assert not session.check_csrf(None)
    assert not session.check_csrf("")
    assert not session.check_csrf("expected-token-but-longer")


def test_each_new_session_gets_its_own_random_token():
    """Tokens are random per session, long enough not to be guessed."""
    first, second = Session(), Session()
    assert first.csrf != second.csrf
    assert len(first.csrf) >= 40
