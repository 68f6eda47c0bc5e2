"""The committed OpenAPI document is the one the code serves; nothing in it searches or lists."""

from __future__ import annotations

import json
from pathlib import Path

from faceverify._service._openapi import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/openapi.json is stale: python -m faceverify._service._openapi > docs/openapi.json"
    )


def test_no_operation_lists_searches_or_returns_templates() -> None:
    schema = json.loads(DOC.read_text())
    for path, item in schema["paths"].items():
        for method in item:
            # Every subject operation names one subject in its path; nothing lists subjects.
            assert not (method == "get" and path.rstrip("/").endswith("subjects")), path
            assert "search" not in path and "identify" not in path, path
    properties = json.dumps(schema["components"]["schemas"]).lower()
    for word in ("embedding", "template_blob", '"score"', "vector"):
        assert word not in properties, word
