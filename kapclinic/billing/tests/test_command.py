"""`manage.py superbill` writes the superbill; exit 2 with a sentence for what it cannot do."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from pypdf import PdfReader

from kapclinic.billing import services
from kapclinic.billing.testing import add_diagnosis, discharged_session, starter_fee_schedule
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


def test_writes_the_pdf_and_refuses_with_exit_2(world: Any, tmp_path: Path) -> None:
    desk = actor_for(world.front_desk, world.clinic)
    starter_fee_schedule(desk)
    add_diagnosis(world.patient, world.prescriber)
    s = discharged_session(world.patient, world.prescriber)
    (line,) = services.post_charges(
        desk, world.patient, line_ids=[x.pk for x in services.propose_for_session(desk, s)]
    )
    out = tmp_path / "sb.pdf"
    day = line.service_date.isoformat()
    stdout = io.StringIO()
    call_command("superbill", patient=world.patient.mrn, start=day, end=day, out=str(out), stdout=stdout)
    text = PdfReader(out).pages[0].extract_text()
    assert "Superbill" in text and "G2083" in text and world.patient.mrn in text
    for kwargs, sentence in [
        ({"patient": "NOPE-1", "start": day, "end": day}, "No patient has the record number"),
        ({"patient": world.patient.mrn, "start": "2020-01-01", "end": "2020-01-31"}, "no posted services"),
        ({"patient": world.patient.mrn, "start": "01/02/2026", "end": day}, "YYYY-MM-DD"),
    ]:
        with pytest.raises(CommandError, match=sentence) as exc:
            call_command("superbill", out=str(tmp_path / "x.pdf"), **kwargs)
        assert exc.value.returncode == 2  # BaseCommand.run_from_argv exits with it
    assert not (tmp_path / "x.pdf").exists()
