"""The OpenAPI document checked into docs/reference/ is the one the service serves:
a route or model that changes without regenerating it fails here."""

from __future__ import annotations

from pathlib import Path

from warmfleet.http import openapi

CHECKED_IN = Path(__file__).resolve().parents[3] / "docs" / "reference" / "openapi.json"


def test_the_checked_in_openapi_document_matches_the_app():
    assert CHECKED_IN.read_text() == openapi.render(openapi.document()), (
        "docs/reference/openapi.json is stale: python -m warmfleet.http.openapi > docs/reference/openapi.json"
    )


def test_the_document_names_every_protocols_routes():
    paths = openapi.document()["paths"]
    assert {"/run_code", "/run_jupyter", "/v1/jobs", "/v1/sessions", "/v1/sessions/{session_id}/run"} <= set(paths)
    assert "/mcp" not in paths and "/healthz" not in paths  # not JSON APIs: the MCP transport, the probe
