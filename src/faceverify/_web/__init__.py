"""The browser face of faceverify: the capture module, its pages, and the ceremony tokens they use.

Static files live in ``static/`` (an ES module with no build step, its type
declarations, the pages and their style sheet); the service serves them
(``faceverify._service._pages``). ``_ceremony`` holds what the pages need on the
server: the consent documents and the short-lived, single-subject tokens that let
a browser run one ceremony without ever holding an API key.
"""

from __future__ import annotations

from ._ceremony import (
    Ceremony,
    CeremonyKind,
    CeremonyTokens,
    ConsentDocument,
    Receipt,
    default_consent_documents,
)

__all__ = [
    "Ceremony",
    "CeremonyKind",
    "CeremonyTokens",
    "ConsentDocument",
    "Receipt",
    "default_consent_documents",
]
