"""Issue 18: the pathway's appointment kinds (consultation/intake and assessment too), each with a
default length the clinic sets, used when the booking form's length is left empty."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from kapclinic.scheduling.models import Appointment, Kind

pytestmark = pytest.mark.django_db


def test_the_pathways_kinds_are_bookable() -> None:
    assert {"consultation", "assessment", "preparation", "dosing", "integration", "follow_up"} <= set(
        Kind.values
    )


def test_clinic_default_length_is_used_and_out_of_range_refused(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    client.force_login(world.admin)
    url = reverse("scheduling:lengths")
    assert client.get(url).status_code == 200
    bad = client.post(url, {"consultation": "500"})
    assert bad.status_code == 400
    assert "Length must be between 15 and 180 minutes for a consultation / intake; got 500." in (
        bad.content.decode()
    )
    assert client.post(url, {"consultation": "45"}).status_code == 302

    client.force_login(world.front_desk)
    form = client.get(reverse("scheduling:new")).content.decode()
    assert "consultation / intake 45" in form
    response = client.post(
        reverse("scheduling:new"),
        {
            "patient": world.patient.pk,
            "kind": "consultation",
            "date": "2026-03-03",
            "time": "10:00",
            "staff": world.therapist.pk,
            "modality": "in_person",
        },
    )
    assert response.status_code == 302
    appt = Appointment.objects.get(patient=world.patient, kind="consultation")
    assert appt.minutes == 45
