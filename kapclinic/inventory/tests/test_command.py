"""`manage.py controlled_substances report|verify`."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from kapclinic.core import clock
from kapclinic.inventory import services
from kapclinic.inventory.models import Container, LedgerEntry
from kapclinic.inventory.testing import receive
from kapclinic.testing.factories import actor_for

pytestmark = pytest.mark.django_db


def _stock(world: Any) -> Container:
    c = Container.objects.get(receipt=receive(world.prescriber, world.clinic))
    nurse = actor_for(world.nurse, world.clinic)
    services.record_entry(nurse, c.pk, kind="administration", amount="70", patient=world.patient, route="IM")
    services.record_entry(nurse, c.pk, kind="waste", amount="5", witness=world.prescriber)
    return c


def test_report_writes_the_administration_log(world: Any, clock_frozen: Any, tmp_path: Any) -> None:
    c = _stock(world)
    out = tmp_path / "log.csv"
    day = clock.today().isoformat()
    call_command(
        "controlled_substances",
        "report",
        "--registration",
        c.registration.dea_number,
        "--from",
        day,
        "--to",
        day,
        "--format",
        "csv",
        "--output",
        str(out),
    )
    lines = out.read_text().splitlines()
    assert lines[0] == (
        "date and time,patient record number,product,lot,container,mg,mL,route,"
        "administered by,witness,balance after"
    )
    assert len(lines) == 3 and world.patient.mrn in lines[1] and lines[1].endswith(",430")
    assert "(waste)" in lines[2] and lines[2].endswith(",425")


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--from", "2026-13-01", "--to", "2026-03-02"], "YYYY-MM-DD"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "must not be after"),
        (["--from", "2026-03-01", "--to", "2026-03-02", "--format", "pdf"], "use --format csv"),
    ],
)
def test_report_refuses_bad_arguments(world: Any, clock_frozen: Any, args: list[str], sentence: str) -> None:
    c = _stock(world)
    with pytest.raises(CommandError, match=sentence):
        call_command("controlled_substances", "report", "--registration", c.registration.dea_number, *args)
    with pytest.raises(CommandError, match="No registration"):
        call_command(
            "controlled_substances",
            "report",
            "--registration",
            "AP5836727",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
        )


def test_verify_passes_then_fails_on_a_tampered_ledger(world: Any, clock_frozen: Any) -> None:
    c = _stock(world)
    out = io.StringIO()
    call_command("controlled_substances", "verify", stdout=out)
    assert "All 1 containers add up." in out.getvalue()
    line = LedgerEntry.objects.get(container=c, seq=2)
    with connection.cursor() as cursor:  # someone edits the database behind the application
        cursor.execute(
            f"UPDATE {LedgerEntry._meta.db_table} SET amount = 50, delta = -50 WHERE id = %s", [line.pk]
        )
    err = io.StringIO()
    with pytest.raises(SystemExit) as exc:
        call_command("controlled_substances", "verify", stdout=io.StringIO(), stderr=err)
    assert exc.value.code == 1
    assert (
        c.identifier in err.getvalue()
        and "line 2: balance after is 430 but the entries add up to 450" in err.getvalue()
    )
