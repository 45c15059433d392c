"""The demo registers one SMART app (seeding again adds none: test_seed.py), and the demo record
reads as valid FHIR."""

from __future__ import annotations

from typing import Any

import pytest

from kapclinic.fhirapi.demo import DEMO_APP
from kapclinic.fhirapi.models import FhirClient
from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_demo_app_is_registered_once_and_demo_scores_search(demo: Seeded, client: Any) -> None:
    from kapclinic.accounts.models import Membership

    assert FhirClient.objects.filter(name=DEMO_APP).count() == 1
    prescriber = Membership.objects.filter(role="prescriber").select_related("user").first()
    assert prescriber is not None
    client.force_login(prescriber.user)
    bundle = client.get("/fhir/Observation?code=http://loinc.org|44261-6&_count=20").json()
    assert bundle["total"] > 0 and len(bundle["entry"]) <= 20
