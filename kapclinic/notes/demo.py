"""Demo notes (synthetic): the demo patient's preparation, session-experience and integration notes on
one dosing thread, a draft, a clinic template with two versions and an encrypted process note edited
once. Idempotent."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from kapclinic.notes import services
from kapclinic.notes.models import Note
from kapclinic.patients.models import CareTeamRole
from kapclinic.scheduling.models import Appointment


def _texts(**values: str) -> dict[str, str]:
    return values


def seed(ctx: Any) -> None:
    if Note.objects.filter(clinic=ctx.clinic).exists():
        return
    therapist = ctx.staff_actor("therapist")
    demo = ctx.demo_patient
    circle = services.template_create(
        therapist,
        title="Group integration circle",
        section_labels=["Attendance", "Shared themes", "Follow-up"],
    )
    services.template_update(  # version 2: the history on /notes/templates/ has something to show
        therapist, circle, expected_version=circle.version,
        title="Group integration circle",
        section_labels=["Attendance", "Shared themes", "Individual check-ins", "Follow-up"],
    )  # fmt: skip
    prep = Appointment.objects.filter(patient=demo, kind="preparation").order_by("starts_at").first()
    if prep is not None:
        note = services.note_create(
            therapist, demo, template_key="preparation", service_date=timezone.localdate(prep.starts_at)
        )
        services.note_sign(
            therapist, note, expected_version=note.version,
            texts=_texts(
                intention="To understand the heaviness I carry since my father's illness, "
                "without forcing it.",
                expectations="Reviewed the time course of a session, eye shades and music; "
                "no expectation of a particular experience.",
                fears="Losing control; being sick.",
                signals="Raised hand = I need to talk; thumbs up = I am fine.",
                touch="Hand on shoulder only, if asked.",
                grounding="Paced breathing practised (4 in, 6 out).",
                plan="First dosing session as booked.",
            ),
        )  # fmt: skip
    past = (
        Appointment.objects.filter(patient=demo, kind="dosing", status="completed")
        .order_by("-starts_at")
        .first()
    )
    if past is not None:
        day = timezone.localdate(past.starts_at)
        exp = services.note_create(
            therapist, demo, template_key="dosing_experience", service_date=day, dosing_appointment=past
        )
        services.note_sign(
            therapist, exp, expected_version=exp.version,
            texts=_texts(
                set="Arrived calm, intention read aloud.",
                setting="Chair 1, dim light, eye shades and headphones; therapist and nurse present; "
                "in person.",
                music="Clinic ambient playlist A.",
                surfaced="Images of the family kitchen; tearfulness, then a sense of warmth in the chest.",
                stance="Mostly quiet and supportive; one reassurance at 35 minutes.",
                closing="Handed over to the nurse for recovery.",
            ),
        )  # fmt: skip
        integ = services.note_create(
            therapist, demo, template_key="integration", service_date=day + dt.timedelta(days=1),
            dosing_appointment=past,
        )  # fmt: skip
        services.note_sign(
            therapist, integ, expected_version=integ.version,
            texts=_texts(
                timing="The day after the dosing session.",
                review="Described the kitchen imagery and warmth; felt both grief and relief.",
                themes="Grief and loss; relationship with father.",
                insights="Links to the intention: the heaviness is partly unexpressed grief.",
                translation="Will call her sister this week; short evening walks.",
                commitments="Write a letter to her father (not to send); journal check-ins twice a week.",
                safety="PHQ-9 due before next session; sleep improved; no substance use; "
                "no safety concerns.",
                next="Second dosing session as planned; review the letter at the next integration session.",
            ),
        )  # fmt: skip
        services.addendum_add(
            ctx.staff_actor("prescriber"), integ, text="Reviewed with the therapist; no change to the plan."
        )
    for patient in [p for p in ctx.patients if p.pk != demo.pk and p.pathway_status == "active"][:3]:
        care = patient.care_team.filter(role=CareTeamRole.THERAPIST).select_related("user").first()
        if care is None:
            continue
        actor = therapist if care.user_id == ctx.staff["therapist"].pk else ctx.staff_actor("therapist2")
        note = services.note_create(actor, patient, template_key="soap")
        services.note_save_draft(
            actor,
            note,
            expected_version=note.version,
            texts={"subjective": "Reports steadier mood this week.", "plan": "Continue."},
        )
    pn = services.process_note_create(
        therapist,
        demo,
        text="Countertransference: noticed my own protectiveness when she spoke of her father.",
    )
    services.process_note_edit(
        therapist,
        pn,
        expected_version=pn.version,
        text="Countertransference: noticed my own protectiveness when she spoke of her father. "
        "On reflection, check whether I steered away from her anger.",
    )
