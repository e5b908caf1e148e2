"""The service's OpenAPI document, as served at /openapi.json, and its checked-in copy
(docs/reference/openapi.json; a test fails when they drift apart). Regenerate with:

    python -m warmfleet.http.openapi > docs/reference/openapi.json
"""

from __future__ import annotations

import json
import sys


def document() -> dict:
    """The document of an app with the default settings (no Redis is reached)."""
    from warmfleet.http.app import create_app

    return create_app().openapi()


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render(document()))
