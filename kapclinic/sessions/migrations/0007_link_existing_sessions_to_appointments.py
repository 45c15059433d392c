"""Link sessions created before DosingSession.appointment existed to their dosing appointment, where the
evidence is unambiguous:

1. an integration note named both the appointment and the session (notes.Note.dosing_session_id, the
   soft reference the notes app kept until this link existed), or
2. exactly one non-cancelled dosing appointment of the same patient starts exactly when the session was
   scheduled (how the nurse's flow and the demo create them).

A session with several candidates, or an appointment claimed by more than one session that is not
aborted, is left unlinked (nothing is guessed). Reversing leaves the links (the column goes with 0006).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations


def link_sessions(apps: Any, schema_editor: Any) -> None:
    db = schema_editor.connection.alias
    Session = apps.get_model("kap_sessions", "DosingSession")
    Appointment = apps.get_model("scheduling", "Appointment")
    Note = apps.get_model("notes", "Note")
    sessions = {
        pk: (patient_id, when, state)
        for pk, patient_id, when, state in Session.objects.using(db)
        .filter(appointment__isnull=True)
        .values_list("pk", "patient_id", "scheduled_for", "state")
    }
    if not sessions:
        return
    appts = Appointment.objects.using(db).filter(kind="dosing").exclude(status="cancelled")
    by_start: dict[tuple[int, Any], list[int]] = defaultdict(list)
    appt_patient: dict[int, int] = {}
    for pk, patient_id, starts_at in appts.values_list("pk", "patient_id", "starts_at"):
        by_start[(patient_id, starts_at)].append(pk)
        appt_patient[pk] = patient_id
    candidates: dict[int, set[int]] = defaultdict(set)
    for session_id, appt_id in (
        Note.objects.using(db)
        .filter(dosing_session_id__in=list(sessions), dosing_appointment__isnull=False)
        .values_list("dosing_session_id", "dosing_appointment_id")
        .distinct()
    ):
        if appt_patient.get(appt_id) == sessions[session_id][0]:
            candidates[session_id].add(appt_id)
    for session_id, (patient_id, when, _state) in sessions.items():
        if session_id not in candidates and len(by_start.get((patient_id, when), [])) == 1:
            candidates[session_id].add(by_start[(patient_id, when)][0])
    taken = set(
        Session.objects.using(db)
        .filter(appointment__isnull=False)
        .exclude(state="aborted")
        .values_list("appointment_id", flat=True)
    )
    live_claims: dict[int, int] = defaultdict(int)
    for session_id, appt_ids in candidates.items():
        if len(appt_ids) == 1 and sessions[session_id][2] != "aborted":
            live_claims[next(iter(appt_ids))] += 1
    for session_id, appt_ids in candidates.items():
        if len(appt_ids) != 1:
            continue
        appt_id = next(iter(appt_ids))
        live = sessions[session_id][2] != "aborted"
        if live and (appt_id in taken or live_claims[appt_id] > 1):
            continue
        Session.objects.using(db).filter(pk=session_id).update(appointment_id=appt_id)


class Migration(migrations.Migration):
    dependencies = [
        ("kap_sessions", "0006_dosing_session_appointment"),
        ("notes", "0002_processnote_dosing_session"),
        ("scheduling", "0001_initial"),
    ]

    operations = [migrations.RunPython(link_sessions, migrations.RunPython.noop, elidable=False)]
