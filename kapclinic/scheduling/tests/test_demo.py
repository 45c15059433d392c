"""The demo schedule keeps to the policy: every appointment with a therapist is with a patient on that
therapist's caseload, so no therapist sees their own appointment as a busy block. Idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from kapclinic.accounts.models import Membership, User
from kapclinic.patients.models import CareTeamMember
from kapclinic.scheduling.models import Appointment

pytestmark = pytest.mark.django_db


def test_demo_therapist_appointments_are_on_their_caseload(client: Any) -> None:
    call_command("seed_demo", "--quiet-logins")
    n = Appointment.objects.count()
    call_command("seed_demo", "--quiet-logins")
    assert Appointment.objects.count() == n > 0
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
