"""Reads of the portal app, including what staff may see of the journal (shared entries only)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
    """Who opened my record: staff roles and times from the audit trail (no names needed)."""
    from kapclinic.accounts.models import STAFF_ROLES
    from kapclinic.audit.models import AuditEvent

    return (
        AuditEvent.objects.filter(patient=patient, actor_role__in=[str(r) for r in STAFF_ROLES])
        .exclude(action="denied")
        .values("at", "actor_role", "action", "object_type")
        .order_by("-id")
    )


ROLE_LABELS = {
    "admin": "Clinic administrator",
    "prescriber": "Prescriber",
    "therapist": "Therapist",
    "nurse": "Nurse",
    "front_desk": "Front desk",
}
ACTION_LABELS = {
    "view": "Opened",
    "list": "Listed",
    "create": "Added",
    "update": "Changed",
    "sign": "Signed",
    "export": "Sent or exported",
}


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
                "points": [{"x": r.completed_at.date().isoformat(), "y": r.total} for r in view.rows],
            }
        )
    return out


def _due(patient: Any) -> list[Any]:
    try:
        from kapclinic.measures.selectors import due_for_patients
        from kapclinic.patients.models import Patient
    except ImportError:  # pragma: no cover
        return []
    return [row.due for row in due_for_patients(Patient.objects.filter(pk=patient.pk))]


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


def _safety_plan(patient: Any) -> Any:
    try:
        from kapclinic.measures.models import SafetyPlan
    except ImportError:  # pragma: no cover
        return None
    return SafetyPlan.objects.filter(patient=patient).first()


def home(patient: Any) -> dict[str, Any]:
    from kapclinic.core import clock
    from kapclinic.portal.models import EntryKind
    from kapclinic.scheduling.models import Kind
    from kapclinic.scheduling.selectors import patient_appointments

    upcoming = list(patient_appointments(patient, upcoming_only=True)[:8])
    recent = list(journal(patient)[:40])
    by_appt: dict[tuple[int, str], bool] = {
        (e.appointment_id, e.kind): True for e in recent if e.appointment_id is not None
    }
    prompts = []
    next_dosing = next((a for a in upcoming if a.kind == Kind.DOSING), None)
    if next_dosing and not by_appt.get((next_dosing.pk, EntryKind.INTENTION)):
        prompts.append(("intention", next_dosing))
    from kapclinic.scheduling.models import Appointment, Status

    last = (
        Appointment.objects.filter(patient=patient, kind=Kind.DOSING, starts_at__lte=clock.now())
        .exclude(status__in=[Status.CANCELLED, Status.NO_SHOW])
        .order_by("-starts_at")
        .first()
    )
    if last and not by_appt.get((last.pk, EntryKind.REFLECTION)):
        prompts.append(("reflection", last))
    return {
        "upcoming": upcoming,
        "due": _due(patient),
        "charts": _charts(patient),
        "safety_plan": _safety_plan(patient),
        "recent_entries": recent[:3],
        "prompts": prompts,
        **_consent_and_plan(patient),
    }
