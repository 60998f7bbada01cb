"""Transport contract: authentication, request validation, body limits, the OpenAPI document."""

from __future__ import annotations

from typing import Any

import courier
import httpx
import pytest
from courier import Courier
from relaybox_harness import RelayboxServer, Workspace


def _assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == "invalid_request_error"
    assert isinstance(body["message"], str)
    assert body["message"]
    return dict(body)


def test_bad_or_missing_api_key_is_401(server: RelayboxServer) -> None:
    """A wrong key raises AuthenticationError with Courier's envelope; no header is 401."""
    with Courier(api_key="bad", base_url=server.url, max_retries=0) as client:
        with pytest.raises(courier.AuthenticationError) as caught:
            client.automations.list()
        assert caught.value.status_code == 401
        assert caught.value.body["type"] == "invalid_request_error"
        with pytest.raises(courier.AuthenticationError):
            client.automations.invoke.invoke_ad_hoc(automation={"steps": []})

    _assert_envelope(httpx.get(f"{server.url}/automations"), 401)
    _assert_envelope(
        httpx.post(f"{server.url}/automations/invoke", json={"automation": {"steps": []}}), 401
    )
    _assert_envelope(
        httpx.get(f"{server.url}/automations", headers={"Authorization": "Bearer"}), 401
    )
    _assert_envelope(
        httpx.get(
            f"{server.url}/automations", headers={"Authorization": f"Basic {server.api_key}"}
        ),
        401,
    )


@pytest.mark.parametrize(
    ("automation", "mentions"),
    [
        pytest.param({"steps": "nope"}, "automation.steps", id="steps-not-array"),
        pytest.param({}, "automation.steps", id="no-steps"),
        pytest.param({"steps": [{"action": "explode"}]}, "explode", id="unknown-action"),
        pytest.param({"steps": [{"action": "delay"}]}, "delay", id="delay-without-timing"),
        pytest.param(
            {"steps": [{"action": "delay", "duration": "soon"}]}, "soon", id="bad-duration"
        ),
        pytest.param({"steps": [{"template": "T"}]}, "action", id="step-without-action"),
        pytest.param(
            {"steps": [{"action": "cancel"}]}, "cancelation_token", id="cancel-without-token"
        ),
    ],
)
def test_invalid_ad_hoc_automation_is_400(
    ws: Workspace, automation: dict[str, Any], mentions: str
) -> None:
    """An invalid ad hoc automation raises BadRequestError naming the offending field."""
    with pytest.raises(courier.BadRequestError) as caught:
        ws.client().automations.invoke.invoke_ad_hoc(automation=automation, recipient="u1")
    assert caught.value.body["type"] == "invalid_request_error"
    assert mentions in caught.value.body["message"]


def test_malformed_or_oversized_bodies_are_rejected(ws: Workspace) -> None:
    """Malformed JSON is 400 and a body over 1 MiB is 413, both in Courier's envelope."""
    with ws.http() as http:
        headers = {"Content-Type": "application/json"}
        body = _assert_envelope(
            http.post(
                "/automations/invoke", content=b'{"automation": {"steps": [', headers=headers
            ),
            400,
        )
        assert "JSON" in body["message"]
        _assert_envelope(
            http.post("/automations/invoke", content=b'["not", "an", "object"]', headers=headers),
            400,
        )
        _assert_envelope(http.post("/automations/invoke", content=b"", headers=headers), 400)
        padding = b"x" * (1024 * 1024)
        oversized = b'{"automation": {"steps": []}, "data": {"pad": "' + padding + b'"}}'
        _assert_envelope(http.post("/automations/invoke", content=oversized, headers=headers), 413)
        # The server is still healthy and the limit is on size, not on the route.
        ok = http.post("/automations/invoke", json={"automation": {"steps": []}})
        assert ok.status_code == 200, ok.text
        assert ok.json()["runId"]


def test_openapi_document_lists_the_invoke_route(server: RelayboxServer) -> None:
    """/openapi.json is served and documents POST /automations/invoke."""
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert "/automations/invoke" in document["paths"]
    assert "post" in document["paths"]["/automations/invoke"]
