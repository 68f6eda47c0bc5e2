"""The service's OpenAPI document, as committed in ``docs/openapi.json``.

``python -m faceverify._service._openapi > docs/openapi.json`` regenerates it;
``tests/service/test_openapi.py`` fails when the committed copy is stale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    """The schema of a standalone app (no pages), built on a throwaway SQLite folder."""
    from ._app import create_app
    from ._config import ServiceConfig
    from ._db import SQLiteServiceDatabase

    with tempfile.TemporaryDirectory() as tmp:
        db = SQLiteServiceDatabase(Path(tmp) / "service.db")  # no vault needed for the schema
        try:
            app = create_app(ServiceConfig(database=tmp), database=db, pages=False, preload=False)
            return app.openapi()
        finally:
            db.close()


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
