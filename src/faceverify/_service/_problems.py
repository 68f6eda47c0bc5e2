"""One error shape for every refusal: RFC 9457 ``application/problem+json`` with a stable ``code``.

``code`` is the library's own reason code (``FaceVerifyError.code``: the same
codes the CLI maps to exit codes) or one of the service's (``unauthorized``,
``forbidden``, ``rate_limited``, ``not_found``...). ``type`` is
``urn:faceverify:problem:<code>``; ``title`` is fixed per code; ``detail`` is
said only where it describes the caller's own input (why an image was refused)
or the caller may know it.

**Nothing beyond the caller's scope.** Whether a subject is enrolled, revoked,
expired, locked out, enrolled for another purpose, or was probed with the same
capture, tells a stranger that an account exists. A client without ``enroll``
or ``admin`` scope (a login page's back end, which only verifies) gets one
opaque problem, ``not_verifiable``, for all of them, with the same status, title
and no detail; clients that enrol subjects (and so know who is enrolled) get
the precise code.
"""

from __future__ import annotations

from typing import Any

from .._errors import FaceVerifyError

MEDIA_TYPE = "application/problem+json"

#: code: (HTTP status, title)
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad_input": (400, "The request or its image cannot be used"),
    "no_face": (422, "No face was found in the image"),
    "several_faces": (422, "Several faces are in the image: one person at a time"),
    "low_quality": (422, "The face is too small, blurred, dark or turned away"),
    "not_live": (422, "The capture could not be shown to be live"),
    "consent": (422, "No valid consent covers this use"),
    "unknown_subject": (404, "No template is enrolled for this subject"),
    "revoked": (410, "The subject withdrew consent; the template was erased"),
    "expired": (410, "The template expired; re-enrol"),
    "locked_out": (423, "Too many failed attempts; retry later"),
    "enumeration_refused": (409, "This capture was already tried against other subjects"),
    "invalid_template": (409, "The stored template could not be opened"),
    "not_verifiable": (409, "This subject cannot be verified with this request"),
    "unknown_session": (404, "No such live session (absent, expired or already decided)"),
    "store_unavailable": (503, "The database is unavailable; retry shortly"),
    "model": (503, "The models are not available"),
    "key_store": (503, "The key store is unavailable"),
    "store_corrupt": (503, "The store failed an integrity check"),
    "configuration": (400, "A setting outside what faceverify allows"),
    "timeout": (504, "The operation timed out"),
    "unauthorized": (401, "A valid API key is required"),
    "forbidden": (403, "The API key lacks the scope or subject prefix for this operation"),
    "rate_limited": (429, "Too many requests; retry later"),
    "not_found": (404, "Not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "unsupported_media_type": (415, "Send the frame as image/jpeg, image/png or image/webp"),
    "too_large": (413, "The request body is too large"),
    "error": (500, "Internal error"),
}

#: Codes that say something about a subject's existence or state.
SUBJECT_CODES = frozenset(
    {
        "unknown_subject",
        "revoked",
        "expired",
        "locked_out",
        "enumeration_refused",
        "invalid_template",
        "consent",
    }
)

def code_of(exc: FaceVerifyError) -> str:
    """The stable reason code of a library error (``FaceVerifyError.code``)."""
    return exc.code


class Problem(Exception):  # noqa: N818 - a response, raised to end a request
    """A refusal as the client will see it (raised by a route, rendered by the app's handler)."""

    def __init__(
        self,
        code: str,
        *,
        detail: str | None = None,
        retry_after: int | None = None,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.reasons = reasons

    @property
    def status(self) -> int:
        return PROBLEMS.get(self.code, PROBLEMS["error"])[0]

    def body(self, instance: str | None = None) -> dict[str, Any]:
        status, title = PROBLEMS.get(self.code, PROBLEMS["error"])
        body: dict[str, Any] = {
            "type": f"urn:faceverify:problem:{self.code}",
            "title": title,
            "status": status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        if self.reasons:
            body["reasons"] = list(self.reasons)
        return body

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.code == "unauthorized":
            headers["WWW-Authenticate"] = 'Bearer realm="faceverify"'
        return headers


def problem_for(exc: FaceVerifyError, *, knows_subjects: bool) -> Problem:
    """The problem a library error becomes, for a caller who may (not) learn subjects' states."""
    code = code_of(exc)
    if code in SUBJECT_CODES and not knows_subjects:
        return Problem("not_verifiable")
    retry = None
    if code == "locked_out":
        retry = max(1, int(getattr(exc, "retry_after").total_seconds() + 0.999))  # noqa: B009
    elif code == "store_unavailable":
        retry = 2
    reasons: tuple[str, ...] = ()
    if code == "low_quality" or (code == "not_live" and knows_subjects):
        reasons = tuple(getattr(exc, "reasons", ()))
    detail = str(exc) if code in _DETAILED or knows_subjects else None
    if code in ("key_store", "model", "store_unavailable", "store_corrupt", "error"):
        detail = None  # about the server, not the request: logged, never sent
    return Problem(code, detail=detail, retry_after=retry, reasons=reasons)


# Errors whose message describes only the caller's own input.
_DETAILED = frozenset({"bad_input", "no_face", "several_faces", "low_quality", "configuration"})
