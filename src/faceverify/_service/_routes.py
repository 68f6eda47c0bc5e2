"""The ``/v1`` routes: translate HTTP into Verifier ceremonies and back. No face logic here.

Every route names one subject (or one session of one subject); none lists,
searches or returns templates, embeddings or scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Path, Request, Response, Security, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer

from .._errors import FaceVerifyError
from .._vault._consent import ConsentEvidence, ConsentRecord, check_subject_id
from ._clients import ApiClient, Scope
from ._problems import MEDIA_TYPE, PROBLEMS, Problem, problem_for
from ._schemas import (
    CheckOut,
    ConsentIn,
    ConsentOut,
    EnrollmentOut,
    EvidenceOut,
    HealthOut,
    LiveEnrollmentIn,
    OperatingPointOut,
    ProblemOut,
    ReadyOut,
    ReceiptOut,
    VerificationOut,
)
from ._state import ServiceState

_PROBLEM_SCHEMA = ProblemOut.model_json_schema()
#: Every status a /v1 operation may answer with besides its success, documented as problem+json.
def _problem_responses() -> dict[int | str, dict[str, Any]]:
    """Every status a /v1 operation may answer with besides its success, as problem+json,
    described by the codes that use it."""
    by_status: dict[int, list[str]] = {}
    for code, (status, _) in PROBLEMS.items():
        if status not in (500, 504, 405):
            by_status.setdefault(status, []).append(code)
    return {
        status: {
            "description": "problem+json, code: " + ", ".join(f"`{c}`" for c in codes),
            "content": {MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}},
        }
        for status, codes in sorted(by_status.items())
    }


PROBLEM_RESPONSES = _problem_responses()

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="`Authorization: Bearer fv_<client>_<secret>` (see `faceverify clients create`)",
)


def service(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.faceverify
    return state


def caller(request: Request) -> ApiClient:
    client: ApiClient = request.state.fv_client  # set by ServiceMiddleware before routing
    return client


def require(scope: Scope) -> Callable[[Request], ApiClient]:
    def dependency(request: Request) -> ApiClient:
        client = caller(request)
        if not client.allows(scope):
            raise Problem("forbidden", detail=f"this operation needs the {scope.value!r} scope")
        return client

    return dependency


def knows_subjects(client: ApiClient) -> bool:
    """Clients that enrol subjects know who is enrolled: they get precise refusal codes."""
    return client.allows(Scope.ENROLL)


def subject(client: ApiClient, subject_id: str) -> str:
    """The normalised subject id, within the client's prefixes."""
    try:
        normalised = check_subject_id(subject_id)
    except FaceVerifyError as exc:
        raise Problem("bad_input", detail=str(exc)) from None
    if not client.covers(normalised):
        raise Problem("forbidden", detail="the subject id is outside this client's prefixes")
    return normalised


SubjectId = Annotated[str, Path(min_length=1, max_length=128, description="the host's opaque subject id")]
Service = Annotated[ServiceState, Depends(service)]

router = APIRouter(prefix="/v1", dependencies=[Security(bearer)], responses=PROBLEM_RESPONSES)


def consent_out(record: ConsentRecord, state: str) -> ConsentOut:
    return ConsentOut(
        subject_id=record.subject_id,
        purpose=record.purpose,
        granted_at=record.granted_at,
        expires_at=record.expires_at,
        evidence=EvidenceOut(
            document_sha256=record.evidence.document_sha256,
            method=record.evidence.method,
            collected_by=record.evidence.collected_by,
        ),
        scope=list(record.scope),
        digest=record.digest(),
        state=state,  # type: ignore[arg-type]
    )


def enrollment_out(result: Any) -> EnrollmentOut:
    return EnrollmentOut(
        subject_id=result.subject_id,
        template_id=result.template_id,
        model_pack_id=result.model_pack_id,
        images=result.images,
        expires_at=result.expires_at,
        replaced=result.replaced,
    )


def verification_out(result: Any, *, live: bool) -> VerificationOut:
    op = result.operating_point
    return VerificationOut(
        subject_id=result.subject_id,
        match=result.match,
        operating_point=OperatingPointOut(
            name=op.name, fmr=op.fmr if op.calibrated else None, calibrated=op.calibrated
        ),
        rule=result.rule,
        live=live,
        liveness=[CheckOut(name=c.name, passed=c.passed) for c in result.liveness],
    )


def refuse(exc: FaceVerifyError, client: ApiClient) -> Problem:
    return problem_for(exc, knows_subjects=knows_subjects(client))


@contextmanager
def refusing(client: ApiClient) -> Iterator[None]:
    """Raise the library's refusal inside the block as the client's problem+json (``refuse``)."""
    try:
        yield
    except FaceVerifyError as exc:
        raise refuse(exc, client) from None


def consent_for_enrolment(svc: ServiceState, subject_id: str) -> ConsentRecord:
    """The pending consent, else the one in force (re-enrolment); else a ``consent`` problem."""
    pending = svc.pending_consent.get(subject_id)
    if pending is not None:
        return pending
    try:
        return svc.verifier.consent(subject_id)
    except FaceVerifyError:
        raise Problem(
            "consent", detail="no consent is recorded for this subject: POST its consent first"
        ) from None


# -- consent and enrolment -------------------------------------------------------------


@router.post("/subjects/{subject_id}/consent", status_code=201, response_model=ConsentOut, tags=["subjects"])
def give_consent(
    subject_id: SubjectId,
    body: ConsentIn,
    svc: Service,
    client: Annotated[ApiClient, Depends(require(Scope.ENROLL))],
) -> ConsentOut:
    """Record the subject's consent; the next enrolment of this subject is bound to it."""
    sid = subject(client, subject_id)
    with refusing(client):
        record = ConsentRecord(
            subject_id=sid,
            purpose=body.purpose,
            granted_at=body.granted_at or svc.verifier.vault.clock.now(),
            expires_at=body.expires_at,
            evidence=ConsentEvidence(**body.evidence.model_dump()),
            scope=tuple(body.scope),
        )
        svc.verifier.vault.require_consent(sid, record)
        svc.pending_consent.put(record, client_id=client.client_id)
    return consent_out(record, "pending")


@router.get("/subjects/{subject_id}/consent", response_model=ConsentOut, tags=["subjects"])
def read_consent(
    subject_id: SubjectId,
    svc: Service,
    client: Annotated[ApiClient, Depends(require(Scope.ENROLL))],
) -> ConsentOut:
    """The subject's consent record (their own access request): the active one, else a pending one."""
    sid = subject(client, subject_id)
    try:
        return consent_out(svc.verifier.consent(sid), "active")
    except FaceVerifyError as exc:
        pending = svc.pending_consent.get(sid)
        if pending is not None:
            return consent_out(pending, "pending")
        raise refuse(exc, client) from None


@router.post(
    "/subjects/{subject_id}/enrollment", status_code=201, response_model=EnrollmentOut, tags=["subjects"]
)
def enroll(
    subject_id: SubjectId,
    images: Annotated[list[UploadFile], File(description="1 to 5 photos of the subject (JPEG, PNG, WebP)")],
    svc: Service,
    client: Annotated[ApiClient, Depends(require(Scope.ENROLL))],
) -> EnrollmentOut:
    """Enrol from images under the subject's pending consent (or the consent in force, to re-enrol)."""
    sid = subject(client, subject_id)
    data = [image.file.read() for image in images]
    if not 1 <= len(data) <= 5:
        raise Problem("bad_input", detail="enrolment takes 1 to 5 images")
    consent = consent_for_enrolment(svc, sid)
    with refusing(client):
        result = svc.verifier.enroll(sid, data, consent=consent, actor=client.actor)
    svc.pending_consent.discard(sid)
    return enrollment_out(result)


@router.post(
    "/subjects/{subject_id}/enrollment/live",
    status_code=201,
    response_model=EnrollmentOut,
    tags=["subjects"],
)
def enroll_live(
    subject_id: SubjectId,
    body: LiveEnrollmentIn,
    svc: Service,
    client: Annotated[ApiClient, Depends(require(Scope.ENROLL))],
) -> EnrollmentOut:
    """Enrol from a live session started with ``purpose: enroll`` that passed."""
    sid = subject(client, subject_id)
    consent = consent_for_enrolment(svc, sid)
    with refusing(client):
        result = svc.verifier.enroll_session(sid, body.session_id, consent=consent, actor=client.actor)
    svc.pending_consent.discard(sid)
    return enrollment_out(result)


@router.delete("/subjects/{subject_id}", response_model=ReceiptOut, tags=["subjects"])
def revoke(
    subject_id: SubjectId,
    svc: Service,
    client: Annotated[ApiClient, Depends(require(Scope.REVOKE))],
) -> ReceiptOut:
    """Erase the subject's template and destroy its keys; the receipt is the subject's proof."""
    sid = subject(client, subject_id)
    with refusing(client):
        receipt = svc.verifier.revoke(sid, actor=client.actor)
    svc.pending_consent.discard(sid)
    return ReceiptOut(
        subject_id=receipt.subject_id,
        erased_at=receipt.erased_at,
        template_erased=receipt.template_erased,
        keys_destroyed=receipt.keys_destroyed,
    )


# -- still verification -------------------------------------------------------------------


@router.post("/subjects/{subject_id}/verification", response_model=VerificationOut, tags=["verify"])
def verify_still(
    subject_id: SubjectId,
    image: Annotated[UploadFile, File(description="one photo (JPEG, PNG, WebP)")],
    svc: Service,
    client: Annotated[ApiClient, Depends(require(Scope.VERIFY))],
) -> VerificationOut:
    """Verify one still image, only where the service's profile and the subject's consent purpose
    allow it (an ``app-login`` or ``door-access`` subject needs a live session: refused)."""
    sid = subject(client, subject_id)
    data = image.file.read()
    verifier = svc.verifier
    try:
        result = verifier.verify(sid, data, actor=client.actor)
    except FaceVerifyError as exc:
        svc.metrics.decisions.labels("still", "refused").inc()
        problem = refuse(exc, client)
        if (
            problem.code == "not_live"
            and not verifier.profile.liveness_required
            and not knows_subjects(client)
        ):
            problem = Problem("not_verifiable")  # refused for this subject's purpose: it exists
        raise problem from None
    svc.metrics.decisions.labels("still", "match" if result.match else "no_match").inc()
    return verification_out(result, live=False)


# -- health ---------------------------------------------------------------------------------

health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up (no authentication, nothing about subjects)."""
    return HealthOut(status="ok")


@health.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"description": "models not loaded or database unreachable", "model": ReadyOut}},
)
async def readyz(svc: Service, response: Response) -> ReadyOut:
    """Ready to serve: the models are loaded and the database answers."""
    database = await run_in_threadpool(svc.database_reachable)
    ready = svc.models_loaded and database
    if not ready:
        response.status_code = 503
    return ReadyOut(
        status="ready" if ready else "not-ready",
        models=svc.models_loaded,
        database=database,
        test_fixed_challenges=bool(svc.config.fixed_challenges),
        test_synthetic_frames=svc.config.synthetic_frames,
    )
