"""A Bulk export cut into parts (docs/fhir-api.md#bulk-data): settings.FHIR_EXPORT_PARTS pk ranges of the
exported patients per type, one task each, `<Type>.<n>.ndjson` per non-empty part, the last part to finish
writes the manifest. The test settings' task backend runs each part inline, in order."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command

from kapclinic.core import clock
from kapclinic.fhirapi import exports
from kapclinic.fhirapi.models import ExportJob, ExportPart, ExportStatus


@pytest.fixture(autouse=True)
def _export_dir(settings: Any, tmp_path: Any) -> None:
    settings.FHIR_EXPORT_DIR = tmp_path / "exports"


@pytest.fixture
def scale_clinic(world: Any) -> Any:
    from kapclinic.accounts.models import Clinic
    from kapclinic.benchdata.scale import MARKER_SLUG

    call_command("seed_scale", patients=20, seed=5, no_progress=True, json=True, stdout=io.StringIO())
    return Clinic.objects.get(slug=MARKER_SLUG)


def _job(world: Any, clinic: Any, types: tuple[str, ...] = exports.EXPORT_TYPES) -> ExportJob:
    from kapclinic.fhirapi.tests.helpers import register_backend

    registered, _ = register_backend(world, clinic=clinic)
    return ExportJob.objects.create(
        id=uuid.uuid4(), clinic=clinic, client=registered, request_url="http://testserver/fhir/$export",
        types=",".join(types), transaction_time=clock.now(),
    )  # fmt: skip


def _lines(job: ExportJob) -> dict[str, Counter[str]]:
    by_type: dict[str, Counter[str]] = {}
    for output in job.output:
        lines = (exports.export_dir(job.pk) / output["file"]).read_text().splitlines()
        assert len(lines) == output["count"] > 0
        by_type.setdefault(output["type"], Counter()).update(lines)
    return by_type


def test_three_parts_write_the_lines_of_one(world: Any, scale_clinic: Any, settings: Any) -> None:
    settings.FHIR_EXPORT_PARTS = 1
    whole = _job(world, scale_clinic)
    exports.run(str(whole.pk))
    whole.refresh_from_db()
    assert [o["file"] for o in whole.output] == [f"{o['type']}.1.ndjson" for o in whole.output]

    settings.FHIR_EXPORT_PARTS = 3
    ExportJob.objects.filter(pk=whole.pk).update(status=ExportStatus.CANCELLED)  # one export per client
    cut = _job(world, scale_clinic)
    exports.run(str(cut.pk))
    cut.refresh_from_db()
    assert cut.status == ExportStatus.DONE and cut.progress == "done"
    assert ExportPart.objects.filter(job=cut).count() == 3 * len(exports.EXPORT_TYPES)
    assert _lines(cut) == _lines(whole)  # the same lines, as a multiset, type by type
    # the manifest: EXPORT_TYPES order, then part order; a file per non-empty part with its count
    order = [(exports.EXPORT_TYPES.index(o["type"]), int(o["file"].split(".")[1])) for o in cut.output]
    assert order == sorted(order) and len(set(order)) == len(order)
    assert all(o["file"] == f"{o['type']}.{n}.ndjson" for o, (_, n) in zip(cut.output, order, strict=True))
    assert max(n for _, n in order) == 3
    names = sorted(p.name for p in exports.export_dir(cut.pk).iterdir())
    assert names == sorted(o["file"] for o in cut.output)  # empty parts wrote nothing


def test_parts_follow_the_patients_in_pk_ranges(world: Any, scale_clinic: Any, settings: Any) -> None:
    from kapclinic.patients.models import Patient

    settings.FHIR_EXPORT_PARTS = 4
    job = _job(world, scale_clinic, types=("Patient", "Condition"))
    exports.plan(job)
    pks = sorted(Patient.objects.filter(clinic=scale_clinic).values_list("pk", flat=True))
    parts = list(ExportPart.objects.filter(job=job).order_by("index"))
    assert [(p.resource_type, p.number) for p in parts] == [
        (t, n) for t in ("Patient", "Condition") for n in (1, 2, 3, 4)
    ]
    ranges = [(p.lo, p.hi) for p in parts[:4]]
    assert ranges[0][0] == pks[0] and ranges[-1][1] == pks[-1]
    assert sum(1 for pk in pks for lo, hi in ranges if lo <= pk <= hi) == len(pks)  # each in one range
    assert job.__class__.objects.get(pk=job.pk).progress == "0 of 8 parts written"


def test_cancel_in_the_middle_stops_the_parts(
    world: Any, scale_clinic: Any, settings: Any, monkeypatch: Any
) -> None:
    settings.FHIR_EXPORT_PARTS = 3
    job = _job(world, scale_clinic)
    exports.plan(job)
    assert exports.run_part(str(job.pk), 0) == "written"
    assert ExportJob.objects.get(pk=job.pk).progress == f"1 of {3 * len(exports.EXPORT_TYPES)} parts written"
    real_write = exports._write

    def write_then_cancel(*args: Any) -> int:  # the client's DELETE arrives while a chunk is written
        exports.cancel(type("G", (), {"actor": None, "clinic": scale_clinic, "client": "c"})(), job)
        return real_write(*args)

    monkeypatch.setattr(exports, "record_event", lambda *a, **k: None)
    monkeypatch.setattr(exports, "_write", write_then_cancel)
    assert exports.run_part(str(job.pk), 1) == "cancelled"
    assert not exports.export_dir(job.pk).exists()
    monkeypatch.setattr(exports, "_write", real_write)
    assert exports.run_part(str(job.pk), 2) == "cancelled"  # a part starting after the cancel does nothing
    assert not exports.export_dir(job.pk).exists()
    assert ExportJob.objects.get(pk=job.pk).status == ExportStatus.CANCELLED


def test_a_failing_part_fails_the_job(world: Any, scale_clinic: Any, settings: Any, monkeypatch: Any) -> None:
    settings.FHIR_EXPORT_PARTS = 2
    job = _job(world, scale_clinic)
    real_write = exports._write

    def fail_on_observations(out: Any, resources: Any, model: Any, shapes: Any) -> int:
        if model.__name__ == "Observation":
            raise ValueError("a resource the validator refuses")
        return real_write(out, resources, model, shapes)

    monkeypatch.setattr(exports, "_write", fail_on_observations)
    exports.run(str(job.pk))  # the parts run inline; the failing one raises inside its task
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED and job.error == "ValueError" and job.output == []
    assert not exports.export_dir(job.pk).exists()
    after = [p.resource_type for p in ExportPart.objects.filter(job=job, done=False).order_by("index")]
    assert after[0] == "Observation" and "Encounter" in after  # the parts after the failure did not run
    assert exports.run_part(str(job.pk), len(exports.EXPORT_TYPES) * 2 - 1) == "skipped"


def test_a_clinic_without_patients_is_done_at_once(world: Any, settings: Any) -> None:
    from kapclinic.accounts.models import Clinic

    empty = Clinic.objects.create(name="Empty clinic", slug="empty-clinic")
    job = _job(world, empty)
    assert exports.plan(job) == []
    job.refresh_from_db()
    assert job.status == ExportStatus.DONE and job.output == []
