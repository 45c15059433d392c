"""Bulk Data Access $export (docs/fhir-api.md#bulk-data, [D4]).

Kick-off (`Prefer: respond-async`) answers 202 with `Content-Location` and cuts the job into parts: per
requested type, settings.FHIR_EXPORT_PARTS contiguous pk ranges of the exported patients, one task each, so
that several `db_worker` processes write one export in parallel. Each part writes `<Type>.<n>.ndjson` (none
when it finds nothing), streaming rows with `.iterator()` (constant memory whatever the clinic's
size; lean named-row reads for the big tables, export_reads.py), each resource validated before it is
written, per shape rather than per resource (shape_validation.py: the first resource of each structural
signature and code values fully with fhir.resources, later ones leaf by leaf with each leaf's FHIR
primitive validator; docs/fhir-api.md#bulk-data says why this is exact); the status URL answers 202
(`X-Progress`: parts written, `Retry-After`) until the part finishing last writes the manifest (a file per
non-empty part, EXPORT_TYPES order then part order; 200, `Expires`); DELETE cancels; files need the same
client's token and are deleted after settings.FHIR_EXPORT_EXPIRE_HOURS. Exports are for backend services
(system scopes), as the Bulk Data guide recommends ([D4]: SHOULD use SMART Backend Services).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from fhir.resources.R4B import get_fhir_model_class

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.fhirapi import groups
from kapclinic.fhirapi.access import SYSTEM, Grant
from kapclinic.fhirapi.export_reads import chunks
from kapclinic.fhirapi.models import ExportJob, ExportPart, ExportStatus, FhirClient, PatientGroup
from kapclinic.fhirapi.outcome import FhirError
from kapclinic.fhirapi.resources import PARTS
from kapclinic.fhirapi.search import parse_date
from kapclinic.fhirapi.shape_validation import ShapeValidator

EXPORT_TYPES = (
    "Patient",
    "Condition",
    "MedicationStatement",
    "AllergyIntolerance",
    "QuestionnaireResponse",
    "Observation",
    "Appointment",
    "Encounter",
    "Procedure",
    "MedicationAdministration",
    "CarePlan",
    "Consent",
    "AdverseEvent",
)
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
KICKOFF_PARAMS = frozenset({"_type", "_since", "_outputFormat"})
CHUNK = 1000
RETRY_AFTER_SECONDS = 2


def export_dir(job_id: Any) -> Path:
    return Path(settings.FHIR_EXPORT_DIR) / str(job_id)


def client_of(grant: Grant, request: HttpRequest) -> FhirClient:
    client = None
    if grant.context == SYSTEM and grant.client_pk is not None:
        client = FhirClient.objects.filter(pk=grant.client_pk, clinic=grant.clinic).first()
    if client is None:
        from kapclinic.fhirapi.services import deny

        deny(grant, request, detail="bulk-export")
        raise FhirError(403, "forbidden", "Bulk export is for backend services with system scopes.")
    return client


def kick_off(request: HttpRequest, grant: Grant, group_id: str | None) -> ExportJob:
    client = client_of(grant, request)
    if "respond-async" not in request.headers.get("Prefer", ""):
        raise FhirError(400, "invalid", "A bulk export needs the header Prefer: respond-async.")
    group = _export_group(grant, group_id)
    unknown = [name for name in request.GET if name not in KICKOFF_PARAMS]
    if unknown:
        raise FhirError(400, "not-supported", f"The export parameter {unknown[0][:40]!r} is not supported.")
    fmt = request.GET.get("_outputFormat", "application/fhir+ndjson")
    if fmt not in OUTPUT_FORMATS:
        raise FhirError(400, "invalid", "Only NDJSON output is supported.")
    types = [t for t in request.GET.get("_type", ",".join(EXPORT_TYPES)).split(",") if t]
    wrong = [t for t in types if t not in EXPORT_TYPES]
    if wrong or not types:
        raise FhirError(400, "invalid", f"_type: {','.join(wrong)[:80]!r} cannot be exported.")
    if not all(grant.may_read_type(t, "r") for t in types):
        raise FhirError(403, "forbidden", "This access does not include every type asked for.")
    since = None
    if "_since" in request.GET:
        prefix, since, _ = parse_date("_since", request.GET["_since"])
        if prefix != "eq":
            raise FhirError(400, "invalid", "_since takes an instant without a prefix.")
    purge_expired()
    if ExportJob.objects.filter(
        client=client, status__in=[ExportStatus.ACCEPTED, ExportStatus.RUNNING]
    ).exists():
        raise FhirError(429, "throttled", "An export of this client is already running.",
                        headers={"Retry-After": "30"})  # fmt: skip
    job = ExportJob.objects.create(
        id=uuid.uuid4(),
        clinic=grant.clinic,
        client=client,
        group=group,
        request_url=request.build_absolute_uri()[:2000],
        types=",".join(types),
        since=since,
        transaction_time=clock.now(),
    )
    record_event(
        grant.actor,
        "export",
        clinic=grant.clinic,
        obj=job,
        detail=f"client={grant.client} bulk kick-off" + (f" group=ag{group.pk}" if group else ""),
    )
    start(job)
    return job


def _export_group(grant: Grant, group_id: str | None) -> PatientGroup | None:
    """The admin-defined Group `ag<id>` an export is limited to; None for the clinic's Group `g<id>` (or
    `Patient/$export`); 404 for any other id (another clinic's, a deactivated one, an unknown one)."""
    if group_id is None or group_id == f"g{grant.clinic.pk}":
        return None
    rest = group_id.removeprefix("ag")
    group = None
    if group_id.startswith("ag") and rest.isascii() and rest.isdigit() and len(rest) <= 18:
        group = PatientGroup.objects.filter(groups.served(grant.clinic), pk=int(rest)).first()
    if group is None:
        raise FhirError(404, "not-found", "No Group with this id.")
    return group


def _stopped(job_id: Any) -> bool:
    """Cancelled by the client, or failed in another part: the part stops."""
    return ExportJob.objects.filter(
        pk=job_id, status__in=[ExportStatus.CANCELLED, ExportStatus.FAILED]
    ).exists()


def plan(job: ExportJob) -> list[int]:
    """Cut the job into parts: for each requested type, the exported patients (by pk) in
    settings.FHIR_EXPORT_PARTS contiguous ranges; one ExportPart each, EXPORT_TYPES order then range order.
    Returns the parts' indexes (none when there is no patient: the job is done, with an empty output)."""
    pks = list(_clinic_patients(job).order_by("pk").values_list("pk", flat=True))
    cuts = max(1, settings.FHIR_EXPORT_PARTS)
    ranges = [pks[len(pks) * i // cuts : len(pks) * (i + 1) // cuts] for i in range(cuts)]
    bounds = [(r[0], r[-1]) for r in ranges if r]
    types = [t for t in EXPORT_TYPES if t in job.types.split(",")]
    parts = [
        ExportPart(
            job=job, index=len(bounds) * t + n, resource_type=resource_type, number=n + 1, lo=lo, hi=hi
        )
        for t, resource_type in enumerate(types)
        for n, (lo, hi) in enumerate(bounds)
    ]
    with transaction.atomic():
        ExportPart.objects.bulk_create(parts)
        if not parts:
            _finish(job.pk, [])
        else:
            ExportJob.objects.filter(pk=job.pk).update(progress=f"0 of {len(parts)} parts written")
    return [part.index for part in parts]


def start(job: ExportJob) -> None:
    """Plan the job and queue one task per part once the job is committed (the workers share them)."""
    indexes = plan(job)
    from kapclinic.fhirapi.tasks import run_export_part

    job_id = str(job.pk)
    transaction.on_commit(lambda: [run_export_part.enqueue(job_id, index) for index in indexes])


def run(job_id: str) -> str:
    """The task queued before exports were cut into parts (and a direct entry point): plan, then queue
    the parts."""
    job = ExportJob.objects.filter(pk=job_id).first()
    if job is None or job.status != ExportStatus.ACCEPTED or ExportPart.objects.filter(job=job).exists():
        return "skipped"
    indexes = plan(job)
    from kapclinic.fhirapi.tasks import run_export_part

    for index in indexes:
        run_export_part.enqueue(str(job.pk), index)
    return "planned"


def run_part(job_id: str, index: int) -> str:
    """Write one part's file; the part that finishes last marks the job done with the manifest output."""
    job = ExportJob.objects.select_related("clinic").filter(pk=job_id).first()
    part = ExportPart.objects.filter(job__pk=job_id, index=index).first()
    if job is None or part is None or part.done:
        return "skipped"
    if job.status not in (ExportStatus.ACCEPTED, ExportStatus.RUNNING):
        return "cancelled" if job.status == ExportStatus.CANCELLED else "skipped"
    ExportJob.objects.filter(pk=job.pk, status=ExportStatus.ACCEPTED).update(status=ExportStatus.RUNNING)
    folder = export_dir(job.pk)
    folder.mkdir(parents=True, exist_ok=True)
    grant_like = type("ExportGrant", (), {"clinic": job.clinic})()
    model = get_fhir_model_class(part.resource_type)
    patients = _clinic_patients(job).filter(pk__gte=part.lo, pk__lte=part.hi)
    path = folder / f"{part.resource_type}.{part.number}.ndjson"
    count = 0
    shapes = ShapeValidator()
    try:
        with path.open("w", encoding="utf-8") as out:
            for spec in PARTS[part.resource_type]:  # Observation: scores, vital signs, weight, height
                for resources in chunks(spec, patients, job.since, grant_like, CHUNK):
                    count += _write(out, resources, model, shapes)
                    if _stopped(job.pk):
                        shutil.rmtree(folder, ignore_errors=True)
                        return "cancelled"
    except Exception as exc:  # the job answers 500 with a sentence; the worker logs the rest
        ExportJob.objects.filter(pk=job.pk, status__in=[ExportStatus.ACCEPTED, ExportStatus.RUNNING]).update(
            status=ExportStatus.FAILED, error=type(exc).__name__[:200]
        )
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if not count:
        path.unlink(missing_ok=True)
    with transaction.atomic():
        # The part's row first (a write: SQLite takes its write lock here), then the job's row locked:
        # the parts finishing at the same time are serialised, and the last one sees every other done.
        ExportPart.objects.filter(pk=part.pk).update(done=True, file=path.name if count else "", count=count)
        locked = ExportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != ExportStatus.RUNNING:
            shutil.rmtree(folder, ignore_errors=True)
            return "cancelled"
        parts = list(ExportPart.objects.filter(job_id=job.pk).order_by("index"))
        written = sum(p.done for p in parts)
        if written < len(parts):
            ExportJob.objects.filter(pk=job.pk).update(progress=f"{written} of {len(parts)} parts written")
            return "written"
        output = [{"type": p.resource_type, "file": p.file, "count": p.count} for p in parts if p.file]
        _finish(job.pk, output)
    return "done"


def _finish(job_id: Any, output: list[dict[str, Any]]) -> None:
    now = clock.now()
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportStatus.DONE,
        output=output,
        progress="done",
        finished_at=now,
        expires_at=now + dt.timedelta(hours=settings.FHIR_EXPORT_EXPIRE_HOURS),
    )


def _clinic_patients(job: ExportJob) -> Any:
    """The pks of the patients an export writes (a subquery): the clinic's, or an admin-defined Group's
    members (of that clinic) when the job exports one."""
    from kapclinic.patients.models import Patient

    patients = Patient.objects.filter(clinic=job.clinic)
    if job.group_id is not None:
        members = PatientGroup.members.through.objects.filter(patientgroup_id=job.group_id)
        patients = patients.filter(pk__in=members.values("patient_id"))
    return patients.values("pk")


# json.dumps(resource, separators=(",", ":")) without building an encoder per call (same output).
_encode = json.JSONEncoder(separators=(",", ":")).encode


def _write(out: Any, resources: list[dict[str, Any]], model: Any, shapes: ShapeValidator) -> int:
    lines = []
    for resource in resources:
        shapes.validate(resource, model)  # raises before anything of the chunk is written
        lines.append(_encode(resource))
    if lines:
        out.write("\n".join(lines) + "\n")
    return len(resources)


def job_for(grant: Grant, request: HttpRequest, job_id: Any) -> ExportJob:
    """The client's own export; anyone else's (or an unknown id) is 404."""
    client = client_of(grant, request)
    job = ExportJob.objects.filter(pk=job_id, client=client).first()
    if job is None or job.status == ExportStatus.CANCELLED:
        raise FhirError(404, "not-found", "No export with this id.")
    if job.expires_at is not None and job.expires_at <= clock.now():
        raise FhirError(404, "not-found", "This export has expired.")
    return job


def manifest(job: ExportJob) -> dict[str, Any]:
    base = f"{settings.SITE_URL}/fhir"
    return {
        "transactionTime": job.transaction_time.astimezone(dt.UTC).isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": o["type"], "url": f"{base}/$export-file/{job.pk}/{o['file']}", "count": o["count"]}
            for o in job.output
        ],
        "error": [],
    }


def cancel(grant: Grant, job: ExportJob) -> None:
    ExportJob.objects.filter(pk=job.pk).update(status=ExportStatus.CANCELLED)
    shutil.rmtree(export_dir(job.pk), ignore_errors=True)
    record_event(
        grant.actor, "export", clinic=grant.clinic, obj=job, detail=f"client={grant.client} bulk cancelled"
    )


def purge_expired() -> int:
    """Delete the files of exports past their expiry; the job rows stay (answering 404)."""
    expired = list(
        ExportJob.objects.filter(expires_at__lte=clock.now(), status=ExportStatus.DONE).values_list(
            "pk", flat=True
        )
    )
    for job_id in expired:
        shutil.rmtree(export_dir(job_id), ignore_errors=True)
    ExportJob.objects.filter(pk__in=expired).update(status=ExportStatus.CANCELLED, output=[])
    return len(expired)
