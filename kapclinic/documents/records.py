"""Printable clinical records: what each PDF holds, gathered for one record (rendered by core/pdf.py).

Each builder returns a `Printable`: the template (extending pdf/base.html), its context (with the
running header every page prints: clinic, patient name and record number, document title), a file name
and the row the export is audited against. Views decide who may print what (documents/views_records.py);
nothing here checks permissions.

Which records a patient may download from the portal: those the portal already shows them (the signed
consent they signed, their signed treatment plan's goals, their questionnaire scores), never notes, never
process notes, never session records (`portal_records`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils import timezone

from kapclinic.core import clock
from kapclinic.documents.logo import logo_data_uri
from kapclinic.documents.svgchart import trajectory_svg


@dataclass(frozen=True)
class Printable:
    template: str
    context: dict[str, Any]
    filename: str
    obj: Any  # the audited row (None: the object_type below names it)
    object_type: str = ""


def _base(patient: Any, title: str) -> dict[str, Any]:
    clinic = patient.clinic
    return {
        "clinic": clinic,
        "clinic_logo": logo_data_uri(patient.clinic),
        "clinic_name": clinic.name,
        "running_header": f"{patient.legal_name} · {patient.mrn}",
        "document_title": title,
        "patient": patient,
        "printed_at": clock.now(),
    }


def _file(patient: Any, slug: str, day: dt.date | None = None) -> str:
    when = (day or timezone.localdate(clock.now())).isoformat()
    return f"{patient.mrn}-{slug}-{when}.pdf"


# ---------------------------------------------------------------- dosing session


def session_record(session: Any) -> Printable:
    from kapclinic.sessions import selectors
    from kapclinic.sessions.models import AdverseEvent, GateOverride
    from kapclinic.sessions.services import protocol_for

    patient = session.patient
    record = selectors.SessionRecord(session)
    protocol = protocol_for(session)
    given = selectors.given_record(session, protocol, record)
    esketamine = session.protocol_id.startswith("esketamine")
    ctx = {
        **_base(patient, "Dosing session record"),
        "session": session,
        "protocol_title": protocol.title,
        "state_label": selectors.state_label(session.state),
        "admin": record.admin,
        "given": given,
        "timeline": selectors.monitoring_timeline(session, record),
        "overrides": list(GateOverride.objects.filter(session=session).select_related("by")),
        "adverse_events": list(AdverseEvent.objects.filter(session=session).select_related("recorded_by")),
        "rems": selectors.rems_record(session) if esketamine else None,
    }
    day = timezone.localdate(session.scheduled_for)
    return Printable("documents/pdf/session.html", ctx, _file(patient, "dosing-session", day), session)


# ---------------------------------------------------------------- consent


def consent_record(signature: Any) -> Printable:
    patient = signature.patient
    ctx = {**_base(patient, "Signed consent"), "sig": signature, "doc": signature.document}
    return Printable(
        "documents/pdf/consent.html",
        ctx,
        _file(patient, f"consent-v{signature.document.version}", timezone.localdate(signature.signed_at)),
        signature,
    )


# ---------------------------------------------------------------- note


def note_record(note: Any) -> Printable:
    patient = note.patient
    addenda = list(note.addenda.select_related("author").order_by("created_at", "id"))
    ctx = {**_base(patient, "Signed note"), "note": note, "addenda": addenda}
    return Printable("documents/pdf/note.html", ctx, _file(patient, "note", note.service_date), note)


# ---------------------------------------------------------------- treatment plan


def plan_record(plan: Any) -> Printable:
    patient = plan.patient
    ctx = {**_base(patient, "Treatment plan"), "plan": plan}
    day = timezone.localdate(plan.signed_at) if plan.signed_at else None
    return Printable("documents/pdf/plan.html", ctx, _file(patient, "treatment-plan", day), plan)


# ---------------------------------------------------------------- measures


def measures_record(patient: Any) -> Printable:
    from kapclinic.clinical.instruments import get_instrument
    from kapclinic.measures.models import InstrumentResponse

    rows = list(
        InstrumentResponse.objects.filter(patient=patient, episode__ended_at__isnull=True).order_by(
            "completed_at", "id"
        )
    )
    by_key: dict[str, list[Any]] = {}
    for r in rows:
        by_key.setdefault(r.instrument, []).append(r)
    instruments = []
    for key, responses in by_key.items():
        inst = get_instrument(key)
        points = [(timezone.localdate(r.completed_at), r.total) for r in responses]
        first, last = responses[0], responses[-1]
        instruments.append(
            {
                "key": key,
                "title": inst.title,
                "max": inst.max_total,
                "svg": trajectory_svg(inst.title, points, inst.max_total),
                "rows": [
                    {"day": d, "total": r.total, "severity": r.severity_label}
                    for (d, _t), r in zip(points, responses, strict=True)
                ],
                "baseline": first.total,
                "latest": last.total,
                "change": last.total - first.total,
            }
        )
    ctx = {**_base(patient, "Measures summary"), "instruments": instruments}
    return Printable("documents/pdf/measures.html", ctx, _file(patient, "measures"), None, "measures_summary")


# ---------------------------------------------------------------- letter


def chart_summary(patient: Any) -> dict[str, Any]:
    """What a summary letter prints below its text: active diagnoses and medications, latest scores,
    the count of completed dosing sessions."""
    from kapclinic.measures.selectors import patient_instruments
    from kapclinic.patients.models import Diagnosis, DiagnosisStatus, Medication
    from kapclinic.sessions.models import DosingSession, SessionState

    return {
        "diagnoses": list(
            Diagnosis.objects.filter(patient=patient, status=DiagnosisStatus.ACTIVE).values_list(
                "icd10", "description"
            )
        ),
        "medications": list(
            Medication.objects.filter(patient=patient, active=True).values_list("name", "dose")
        ),
        "scores": [
            {
                "title": v.title,
                "first": v.rows[0].total,
                "latest": v.rows[-1].total,
                "n": len(v.rows),
                "latest_day": timezone.localdate(v.rows[-1].completed_at),
            }
            for v in patient_instruments(patient)
            if v.rows
        ],
        "sessions": DosingSession.objects.filter(patient=patient, state=SessionState.DISCHARGED).count(),
    }


def letter_record(letter: Any) -> Printable:
    patient = letter.patient
    title = f"{letter.get_kind_display()} letter"
    ctx = {
        **_base(patient, title),
        "letter": letter,
        "summary": chart_summary(patient) if letter.include_summary else None,
    }
    day = timezone.localdate(letter.signed_at)
    return Printable("documents/pdf/letter.html", ctx, _file(patient, "letter", day), letter)


# ---------------------------------------------------------------- portal


def portal_consent(patient: Any) -> Any:
    """The signature the portal shows: the patient's latest."""
    from kapclinic.consent.models import ConsentSignature

    return (
        ConsentSignature.objects.filter(patient=patient)
        .select_related("document")
        .order_by("-signed_at", "-id")
        .first()
    )


def portal_plan(patient: Any) -> Any:
    from kapclinic.treatment.selectors import signed_plan

    return signed_plan(patient)


def portal_has_measures(patient: Any) -> bool:
    from kapclinic.measures.models import InstrumentResponse

    return InstrumentResponse.objects.filter(patient=patient, episode__ended_at__isnull=True).exists()


def portal_records(patient: Any) -> list[dict[str, str]]:
    out = []
    sig = portal_consent(patient)
    if sig is not None:
        out.append(
            {
                "title": f"My signed consent (version {sig.document.version})",
                "url": reverse("documents:my_consent"),
            }
        )
    if portal_plan(patient) is not None:
        out.append({"title": "My treatment plan", "url": reverse("documents:my_plan")})
    if portal_has_measures(patient):
        out.append({"title": "My questionnaire scores", "url": reverse("documents:my_measures")})
    return out
