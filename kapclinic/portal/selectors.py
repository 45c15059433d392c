"""Reads of the portal app, including what staff may see of the journal (shared entries only)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from kapclinic.accounts.models import Role
from kapclinic.portal.models import JournalEntry


def shared_entries(patient: Any, *, appointment: Any = None) -> QuerySet[JournalEntry]:
    """Entries the patient currently shares with the care team (withdrawn ones are excluded)."""
    qs = JournalEntry.objects.filter(patient=patient, shared_at__isnull=False).select_related("appointment")
    if appointment is not None:
        qs = qs.filter(appointment=appointment)
    return qs.order_by("created_at", "id")


def journal(patient: Any) -> QuerySet[JournalEntry]:
    return (
        JournalEntry.objects.filter(patient=patient)
        .select_related("appointment")
        .order_by("-created_at", "-id")
    )


# ---------------------------------------------------------------- the portal home page


def access_log(patient: Any) -> Any:
    """Who opened my record: staff roles and times from the audit trail (no names needed), newest first.

    Process notes are the therapist's private notes: the patient is never told they exist, so their
    events are left out here (the audit trail itself keeps them)."""
    from kapclinic.accounts.models import STAFF_ROLES
    from kapclinic.audit.models import AuditEvent

    return (
        AuditEvent.objects.filter(patient=patient, actor_role__in=[str(r) for r in STAFF_ROLES])
        .exclude(action="denied")
        .exclude(object_type__icontains="process")
        .values("at", "actor_role", "action", "object_type")
        .order_by("-at", "-id")
    )


ROLE_LABELS = {
    Role.ADMIN: "Clinic administrator",
    Role.PRESCRIBER: "Prescriber",
    Role.THERAPIST: "Therapist",
    Role.NURSE: "Nurse",
    Role.FRONT_DESK: "Front desk",
}
ACTION_LABELS = {
    "view": "Opened",
    "list": "Listed",
    "create": "Added to",
    "update": "Changed",
    "sign": "Signed",
    "export": "Sent or exported",
}
# What an audit event was about, in the patient's words. Keys are the last part of the event's
# object_type (a model label such as "measures.instrumentresponse", or a page name such as "chart").
_WHAT: dict[str, str] = {
    "patient": "your details",
    "chart": "your chart",
    "timeline": "your timeline",
    "demographics_form": "your contact details",
    "care_team": "your care team",
    "careteammember": "your care team",
    "diagnosis": "your diagnoses",
    "medication": "your medications",
    "allergy": "your allergies",
    "instrumentresponse": "your questionnaires",
    "measures": "your questionnaires",
    "portal_measures": "your questionnaires",
    "measure_schedule": "your questionnaire schedule",
    "measurementschedule": "your questionnaire schedule",
    "measurelink": "your questionnaire link",
    "safetyalert": "a safety check on your answers",
    "safety_plan": "your safety plan",
    "safetyplan": "your safety plan",
    "episode": "your progress summary",
    "session": "your dosing session",
    "dosingsession": "your dosing session",
    "appointment": "your appointments",
    "appointments": "your appointments",
    "calendar_feed": "your calendar link",
    "calendarfeed": "your calendar link",
    "reminder": "your appointment reminders",
    "note": "your session notes",
    "notes": "your session notes",
    "addendum": "your session notes",
    "journal": "the journal entries you shared",
    "journalentry": "the journal entries you shared",
    "consent": "your consent",
    "consent_form": "your consent",
    "consentsignature": "your consent",
    "treatment_plan": "your treatment plan",
    "treatment_plan_form": "your treatment plan",
    "treatmentplan": "your treatment plan",
    "assessment": "your assessment",
    "intake_assessment": "your assessment",
    "intake_questionnaire": "your intake questionnaire",
    "eligibilitydecision": "your eligibility review",
    "eligibility_report": "your eligibility review",
    "fhir_bundle": "a copy of your record",
    "document": "your documents",
    "documents": "your documents",
    "records": "your records (to print)",
    "letter": "a letter about your care",
    "measures_summary": "your questionnaires",
}


def access_log_what(object_type: str) -> str:
    """The plain words for what an event touched; "your record" when there is nothing more precise."""
    return _WHAT.get(object_type.rsplit(".", 1)[-1], "your record")


def _charts(patient: Any) -> list[dict[str, Any]]:
    try:
        from kapclinic.measures.selectors import patient_instruments
    except ImportError:  # pragma: no cover
        return []
    out = []
    for view in patient_instruments(patient):
        out.append(
            {
                "key": view.key,
                "title": view.title,
                "max": view.max_total,
                "points": [
                    {"x": timezone.localdate(r.completed_at).isoformat(), "y": r.total} for r in view.rows
                ],
            }
        )
    return out


def _due(patient: Any, upcoming: list[UpcomingAppointment], shown: int) -> list[Any]:
    """The measures due for the patient. ``upcoming`` is the first ``shown`` upcoming booked
    appointments, in start order: the first dosing one that has not started is the next booked dosing
    appointment the due rules look at, and when none is listed although fewer than ``shown`` came back,
    there is none; only otherwise does the measures app read it again."""
    try:
        from kapclinic.measures.selectors import due_for_patient
    except ImportError:  # pragma: no cover
        return []
    from kapclinic.core import clock
    from kapclinic.core.sentinel import NOT_READ
    from kapclinic.scheduling.models import Kind

    now = clock.now()
    next_dosing = next((a.starts_at for a in upcoming if a.kind == Kind.DOSING and a.starts_at > now), None)
    if next_dosing is None and len(upcoming) >= shown:
        next_dosing = NOT_READ
    return due_for_patient(patient, next_dosing_at=next_dosing)


def _consent_and_plan(patient: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"consent": None, "plan": None}
    try:
        from kapclinic.consent.selectors import consent_state

        out["consent"] = consent_state(patient)
    except ImportError:  # pragma: no cover - TODO(issue 4) if consent is absent
        pass
    try:
        from kapclinic.treatment.selectors import signed_plan

        out["plan"] = signed_plan(patient)
    except ImportError:  # pragma: no cover - TODO(issue 4) if treatment is absent
        pass
    return out


def _has_safety_plan(patient: Any) -> bool:
    """Whether the patient has a safety plan: the page only says so and links to it (issue #7: no
    need to read and build the plan itself)."""
    try:
        from kapclinic.measures.models import SafetyPlan
    except ImportError:  # pragma: no cover
        return False
    return SafetyPlan.objects.filter(patient=patient).exists()


@dataclass(frozen=True)
class UpcomingAppointment:
    """One of the patient's upcoming appointments as the portal home prints it."""

    pk: int
    kind: str
    kind_label: str
    starts_at: dt.datetime
    when: str  # "l j F, H:i" in the clinic's time zone
    staff: str
    modality: str
    minutes: int
    preparation: tuple[str, ...]


@dataclass(frozen=True)
class Prompt:
    """A journal prompt: the intention before the next dosing session, the reflection after the last."""

    kind: str  # "intention" | "reflection"
    appointment_id: int
    day: str  # the appointment's day, "l j F"


@dataclass(frozen=True)
class RecentEntry:
    pk: int
    url: str
    kind_label: str
    day: str  # "j M"
    is_shared: bool


#: Upcoming appointments the portal home lists.
UPCOMING_SHOWN = 8


def home(patient: Any) -> dict[str, Any]:
    """What the portal home shows. Appointments and journal entries are read as the shown columns only
    (no model instances, no joins the page does not print; issue #7)."""
    from kapclinic.core import clock
    from kapclinic.portal.models import EntryKind
    from kapclinic.scheduling import rules
    from kapclinic.scheduling.models import Appointment, Kind, Status
    from kapclinic.scheduling.selectors import dosing_preparation, patient_appointments

    kinds = {str(value): str(label) for value, label in Kind.choices}
    upcoming = [
        UpcomingAppointment(
            pk=pk,
            kind=kind,
            kind_label=kinds.get(kind, kind),
            starts_at=starts_at,
            when=date_format(timezone.localtime(starts_at), "l j F, H:i"),
            staff=staff,
            modality=modality,
            minutes=int((ends_at - starts_at).total_seconds() // 60),  # Appointment.minutes
            preparation=rules.preparation_for(  # Appointment.preparation
                kind, dosing_preparation(patient.pk, patient.clinic_id) if kind == Kind.DOSING else None
            ),
        )
        for pk, kind, starts_at, ends_at, modality, staff in patient_appointments(
            patient, upcoming_only=True
        ).values_list("pk", "kind", "starts_at", "ends_at", "modality", "staff__full_name")[:UPCOMING_SHOWN]
    ]
    # The 40 newest entries: the three newest are listed, and an intention or reflection among them
    # for the next or the last dosing session means the page does not prompt for it again.
    recent = list(
        JournalEntry.objects.filter(patient=patient)
        .order_by("-created_at", "-id")
        .values_list("pk", "kind", "appointment_id", "created_at", "shared_at")[:40]
    )
    written = {(appointment_id, kind) for _pk, kind, appointment_id, _at, _shared in recent if appointment_id}
    prompts = []
    next_dosing = next((a for a in upcoming if a.kind == Kind.DOSING), None)
    if next_dosing and (next_dosing.pk, EntryKind.INTENTION) not in written:
        prompts.append(
            Prompt(
                "intention", next_dosing.pk, date_format(timezone.localtime(next_dosing.starts_at), "l j F")
            )
        )
    last = (
        Appointment.objects.filter(patient=patient, kind=Kind.DOSING, starts_at__lte=clock.now())
        .exclude(status__in=[Status.CANCELLED, Status.NO_SHOW])
        .order_by("-starts_at")
        .values_list("pk", "starts_at")
        .first()
    )
    if last and (last[0], EntryKind.REFLECTION) not in written:
        prompts.append(Prompt("reflection", last[0], date_format(timezone.localtime(last[1]), "l j F")))
    entry_kinds = {str(value): str(label) for value, label in EntryKind.choices}
    return {
        "upcoming": upcoming,
        "due": _due(patient, upcoming, UPCOMING_SHOWN),
        "charts": _charts(patient),
        "safety_plan": _has_safety_plan(patient),
        "recent_entries": [
            RecentEntry(
                pk,
                reverse("portal:entry", args=[pk]),
                entry_kinds.get(kind, kind),
                date_format(timezone.localtime(at), "j M"),
                shared is not None,
            )
            for pk, kind, _appointment_id, at, shared in recent[:3]
        ],
        "prompts": prompts,
        **_consent_and_plan(patient),
    }
