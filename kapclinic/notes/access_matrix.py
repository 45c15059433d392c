from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from kapclinic.testing.matrix import Entry, free_start, patient_kwargs, patient_scoped, roles

CLIN = ("prescriber", "therapist", "nurse")


def _note(world: Any) -> dict[str, Any]:
    from kapclinic.notes import services
    from kapclinic.testing.factories import actor_for

    note = services.note_create(actor_for(world.therapist, world.clinic), world.patient, template_key="soap")
    return {"patient_id": world.patient.pk, "note_id": note.pk}


def _appointment(world: Any) -> dict[str, Any]:
    from kapclinic.core import clock
    from kapclinic.scheduling.models import Appointment

    start = free_start(world, clock.now() - dt.timedelta(days=1), 180, world.nurse)
    appt = Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=world.nurse, created_by=world.front_desk,
    )  # fmt: skip
    return {"patient_id": world.patient.pk, "appointment_id": appt.pk}


def _process_note(world: Any) -> dict[str, Any]:
    from kapclinic.notes import services
    from kapclinic.testing.factories import actor_for

    note = services.process_note_create(
        actor_for(world.therapist, world.clinic), world.patient, text="synthetic"
    )
    return {"patient_id": world.patient.pk, "process_note_id": note.pk}


def _template(world: Any) -> dict[str, Any]:
    from kapclinic.notes import services
    from kapclinic.testing.factories import actor_for

    # A fresh title each call: the fuzz test builds the URL once per generated example in one database.
    title = f"Matrix template {uuid.uuid4().hex[:8]}"
    row = services.template_create(
        actor_for(world.therapist, world.clinic), title=title, section_labels=["One"]
    )
    return {"template_id": row.pk}


SCOPED = patient_scoped(CLIN)
TEMPLATES = ("prescriber", "therapist")
# A clinic template of world.clinic: another clinic's prescriber gets 404 (it does not exist for them).
# Posting an empty form (no version): allowed personas get 400 and nothing changes.
TEMPLATE_EDIT = roles(TEMPLATES, other_clinic_staff=404)
TEMPLATE_POSTED = roles(TEMPLATES, ok=400, other_clinic_staff=404)
# Posting an empty form: allowed personas get the form's answer (a redirect with a message or 400).
POSTED = patient_scoped(CLIN, ok=302)
PROCESS = patient_scoped(("prescriber", "therapist"), nurse=403, patient_user=403, other_patient_user=403)

MATRIX = {
    "notes:index": Entry(roles(CLIN)),
    "notes:templates": Entry(roles(TEMPLATES)),
    "notes:template_edit": Entry(TEMPLATE_EDIT, setup=_template),
    "notes:template_retire": Entry(TEMPLATE_POSTED, method="post", setup=_template, note="empty form: 400"),
    "notes:template_reinstate": Entry(
        TEMPLATE_POSTED, method="post", setup=_template, note="empty form: 400"
    ),
    # Built-ins are hidden per clinic: another clinic's prescriber acts on their own clinic (400 here).
    "notes:builtin_visibility": Entry(
        roles(TEMPLATES, ok=400), method="post", kwargs=lambda world: {"key": "soap"}, note="empty form: 400"
    ),
    "notes:patient": Entry(SCOPED, kwargs=patient_kwargs),
    "notes:new": Entry(SCOPED, kwargs=patient_kwargs),
    "notes:detail": Entry(SCOPED, setup=_note),
    # Only the author edits a draft; other clinicians are sent to the read-only view.
    "notes:edit": Entry(patient_scoped(CLIN, prescriber=302, nurse=302), setup=_note),
    "notes:autosave": Entry(patient_scoped(CLIN, ok=400), method="post", setup=_note, note="empty form: 400"),
    "notes:sign": Entry(POSTED, method="post", setup=_note),
    "notes:addendum": Entry(POSTED, method="post", setup=_note),
    "notes:thread": Entry(SCOPED, setup=_appointment),
    "notes:process_list": Entry(PROCESS, kwargs=patient_kwargs),
    # Only the author manages sharing; anyone else gets 404 (the note does not exist for them).
    "notes:process_share": Entry(
        {**PROCESS, "therapist": 302, "prescriber": 404}, method="post", setup=_process_note
    ),
    # Only the author edits a process note and sees its earlier texts; a clinician it is not shared with
    # gets 404 (shared readers get 403: see tests/test_process_notes.py).
    "notes:process_edit": Entry({**PROCESS, "prescriber": 404}, setup=_process_note),
    "notes:process_revisions": Entry({**PROCESS, "prescriber": 404}, setup=_process_note),
}
