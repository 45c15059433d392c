"""The demo schedule keeps to the policy: every appointment with a therapist is with a patient on that
therapist's caseload, so no therapist sees their own appointment as a busy block. The plans' proposed
appointments the calendar has booked are linked to their plan lines (issue 18), so the plan page shows
them booked."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from kapclinic.accounts.models import Membership, User
from kapclinic.core.demo import PATIENT_LOGIN
from kapclinic.patients.models import CareTeamMember
from kapclinic.scheduling import rules
from kapclinic.scheduling.models import ACTIVE_STATUSES, Appointment
from kapclinic.sessions.models import DosingSession
from kapclinic.treatment.models import TreatmentPlan
from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_demo_therapist_appointments_are_on_their_caseload(demo: Seeded, client: Any) -> None:
    therapists = set(Membership.objects.filter(role="therapist").values_list("user_id", flat=True))
    team = set(CareTeamMember.objects.values_list("patient_id", "user_id"))
    with_therapist = Appointment.objects.filter(staff_id__in=therapists)
    assert with_therapist.count() >= 5
    assert {a.staff_id for a in with_therapist} == therapists  # both demo therapists have appointments
    for appt in with_therapist:
        assert (appt.patient_id, appt.staff_id) in team, appt
    for user_id in therapists:
        client.force_login(User.objects.get(pk=user_id))
        for appt in with_therapist.filter(staff_id=user_id)[:3]:
            day = appt.starts_at.date().isoformat()
            body = client.get(reverse("scheduling:index"), {"date": day, "staff": user_id}).content.decode()
            assert 'class="cal-busy"' not in body
            assert appt.patient.display_name in body
    _plan_lines_are_linked(client)


def _plan_lines_are_linked(client: Any) -> None:
    linked = list(Appointment.objects.filter(proposal__isnull=False).select_related("proposal__plan"))
    assert len(linked) >= 10
    assert len({a.proposal_id for a in linked}) == len(linked)  # no plan line booked twice
    for a in linked:
        line = a.proposal
        assert line is not None
        assert line.plan.patient_id == a.patient_id and line.plan.status == "signed"
        assert rules.KIND_FOR_PROPOSAL[line.kind] == a.kind and a.status in ACTIVE_STATUSES
        assert line.booked_ref == str(a.pk)
    # A dosing appointment started as a session is the plan's n-th dosing line for the n-th session.
    for s in DosingSession.objects.filter(appointment__proposal__isnull=False).select_related("appointment"):
        assert s.appointment is not None and s.appointment.proposal is not None
        earlier = DosingSession.objects.filter(patient=s.patient, scheduled_for__lt=s.scheduled_for)
        lines = list(s.appointment.proposal.plan.proposals.filter(kind="dosing"))
        assert lines.index(s.appointment.proposal) == earlier.exclude(state="aborted").count()

    # Every past demo dosing session is on the calendar: its dosing appointment (linked to the session)
    # and an integration appointment the day after; each is linked to its plan line while the plan has
    # one, so a plan page never lists a dose already given as "not booked yet".
    # The demo's history is crowded (sessions run side by side); a session for which no clinician was
    # free keeps no calendar entry, as PostgreSQL refuses a person in two appointments at once.
    past = DosingSession.objects.filter(state="discharged").select_related("appointment")
    missing = past.filter(appointment__isnull=True)
    assert past.count() >= 20 and missing.count() < past.count(), (missing.count(), past.count())
    for s in past.filter(appointment__isnull=False):
        assert s.appointment is not None and s.appointment.kind == "dosing"
        # (the scheduling demo's own bookings were read from the clock moments before their sessions)
        assert s.appointment.starts_at - dt.timedelta(minutes=15) <= s.scheduled_for < s.appointment.ends_at
        day = timezone.localdate(s.appointment.starts_at) + dt.timedelta(days=1)
        assert Appointment.objects.filter(
            patient=s.patient_id, kind="integration", starts_at__date=day, status__in=ACTIVE_STATUSES
        ).exists(), s
    for plan in TreatmentPlan.objects.filter(status="signed"):
        given = past.filter(patient=plan.patient_id).count()
        off_calendar = missing.filter(patient=plan.patient_id).count()
        dosing = list(plan.proposals.filter(kind="dosing"))
        unbooked = [n for n, line in enumerate(dosing, 1) if not line.appointments.exists()]
        # only a dose with no calendar entry leaves its line unbooked
        assert len([n for n in unbooked if n <= given]) <= off_calendar, (plan.patient, unbooked, given)

    # The demo patient: every preparation, dosing and integration appointment on the calendar is a
    # booked line of the signed plan, and the plan page says so with a link to each.
    plan = TreatmentPlan.objects.get(patient__user__email=PATIENT_LOGIN, status="signed")
    mine = Appointment.objects.filter(
        patient=plan.patient, status__in=ACTIVE_STATUSES, kind__in=["preparation", "dosing", "integration"]
    )
    assert mine.count() >= 5 and not mine.filter(proposal__isnull=True).exists()
    client.force_login(User.objects.get(email="prescriber@demo.kapclinic.test"))
    page = client.get(
        reverse("treatment:plan", kwargs={"patient_id": plan.patient_id, "plan_id": plan.pk})
    ).content.decode()
    assert page.count('<span class="badge ok">Booked</span>') == mine.count()
    for a in mine:
        assert reverse("scheduling:detail", args=[a.pk]) in page
