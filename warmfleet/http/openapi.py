"""The service's OpenAPI document, as served at /openapi.json, and its checked-in copy
(docs/reference/openapi.json; a test fails when they drift apart). Regenerate with:

    python -m warmfleet.http.openapi > docs/reference/openapi.json

Also what routes use to document their errors: every error body is ErrorBody
(warmfleet/http/errors.py answers them), not FastAPI's default validation shape.
"""

from __future__ import annotations

import json
import sys

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every error: the HTTP status again, and what went wrong in words."""

    code: int
    message: str


def error_responses(**described: str) -> dict:
    """A route's `responses` for its error statuses, `e404="why"` -> {404: ErrorBody, why}."""
    return {int(status.removeprefix("e")): {"model": ErrorBody, "description": text}
            for status, text in described.items()}


def document() -> dict:
    """The document of an app with the default settings (no Redis is reached)."""
    from warmfleet.http.app import create_app

    return create_app().openapi()


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(document()))
