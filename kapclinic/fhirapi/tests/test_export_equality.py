"""The Bulk export's lean read path (kapclinic/fhirapi/exports.py) says exactly what the REST API says:
every NDJSON line of every exported type equals, as a dict, the JSON of `GET /fhir/<Type>/<id>`.

Two clinics: the test world's, with the edge cases written by hand (a second blood-pressure reading, a
diastolic value recorded alone, a side effect, a plan, a consent), and a small clinic of the scale
generator (kapclinic/benchdata), whose histories reach every exported type with realistic variety."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from kapclinic.core import clock
from kapclinic.documents.testing import session_with_monitoring, signed_consent, signed_plan
from kapclinic.fhirapi import exports
from kapclinic.fhirapi.models import ExportJob
from kapclinic.fhirapi.tests.helpers import backend_token, phq9, register_backend
from kapclinic.sessions.models import Observation, SessionEvent


@pytest.fixture(autouse=True)
def _export_dir(settings: Any, tmp_path: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path / "exports"


def _export_and_compare(client: Client, world: Any, clinic: Any, since: dt.datetime | None = None) -> int:
    registered, key = register_backend(world, clinic=clinic)
    token = backend_token(client, key, registered.client_id).json()["access_token"]
    job = ExportJob.objects.create(
        id=uuid.uuid4(), clinic=clinic, client=registered, request_url="http://testserver/fhir/$export",
        types=",".join(exports.EXPORT_TYPES), since=since, transaction_time=clock.now(),
    )  # fmt: skip
    assert exports.run(str(job.pk)) == "planned"  # the parts run inline (the test settings' task backend)
    job.refresh_from_db()
    assert job.status == "done"
    compared = 0
    for output in job.output:
        lines = (exports.export_dir(job.pk) / output["file"]).read_text().splitlines()
        assert len(lines) == output["count"]
        ids = set()
        for line in lines:
            exported = json.loads(line)
            assert exported["resourceType"] == output["type"]
            ids.add(exported["id"])
            read = client.get(
                f"/fhir/{output['type']}/{exported['id']}", HTTP_AUTHORIZATION=f"Bearer {token}"
            )
            assert read.status_code == 200, (output["type"], exported["id"])
            assert exported == json.loads(read.content), (output["type"], exported["id"])
            compared += 1
        assert len(ids) == len(lines)  # no resource twice
    return compared


def test_every_line_equals_the_api_read_on_the_hand_made_clinic(world: Any, client: Client) -> None:
    session = session_with_monitoring(world.patient, world.prescriber, world.nurse, world.clinic)
    other = world.other_clinic_staff
    session_with_monitoring(world.other_clinic_patient, other, other, world.other_clinic)
    systolic = Observation.objects.get(session=session, code="8480-6")
    later = Observation.objects.create(
        session=session, kind="vital", code="8480-6", display="Systolic blood pressure", value=150,
        unit="mm[Hg]", at=systolic.at + dt.timedelta(minutes=20), reading=systolic.reading + 1,
        phase="recovery", recorded_by=world.nurse,
    )  # fmt: skip
    Observation.objects.create(
        session=session, kind="vital", code="8462-4", display="Diastolic blood pressure", value=95,
        unit="mm[Hg]", at=later.at, reading=later.reading, phase="recovery", recorded_by=world.nurse,
    )  # fmt: skip
    Observation.objects.create(  # a second diastolic of the same reading: the first (by id) is paired
        session=session, kind="vital", code="8462-4", display="Diastolic blood pressure", value=97,
        unit="mm[Hg]", at=later.at, reading=later.reading, phase="recovery", recorded_by=world.nurse,
    )  # fmt: skip
    Observation.objects.create(  # same reading, another time: not a partner, a panel of its own
        session=session, kind="vital", code="8462-4", display="Diastolic blood pressure", value=71,
        unit="mm[Hg]", at=later.at + dt.timedelta(minutes=1), reading=later.reading, phase="recovery",
        recorded_by=world.nurse,
    )  # fmt: skip
    Observation.objects.create(  # a diastolic recorded alone
        session=session, kind="vital", code="8462-4", display="Diastolic blood pressure", value=70,
        unit="mm[Hg]", at=later.at + dt.timedelta(minutes=20), reading=later.reading + 1, phase="recovery",
        recorded_by=world.nurse,
    )  # fmt: skip
    SessionEvent.objects.create(session=session, kind="side_effect", code="dizziness", text="Brief",
                                at=clock.now(), recorded_by=world.nurse)  # fmt: skip
    signed_plan(world.patient, world.prescriber)
    signed_consent(world.patient)
    phq9(world)
    assert _export_and_compare(client, world, world.clinic) >= 12
    assert _export_and_compare(client, world, world.clinic, since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("parts", [1, 3])
def test_every_line_equals_the_api_read_on_a_scale_clinic(
    world: Any, client: Client, settings: Any, parts: int
) -> None:
    settings.FHIR_EXPORT_PARTS = parts
    from kapclinic.accounts.models import Clinic
    from kapclinic.benchdata.scale import MARKER_SLUG

    # 6 patients give the clinic under test 1; 20 give it 8, cut into 3 parts per type
    size = 6 if parts == 1 else 20
    call_command("seed_scale", patients=size, seed=5, no_progress=True, json=True, stdout=io.StringIO())
    clinic = Clinic.objects.get(slug=MARKER_SLUG)
    compared = _export_and_compare(client, world, clinic)
    assert compared > 100
