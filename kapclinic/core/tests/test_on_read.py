"""One audited-view helper (issue 13): `open_patient(..., audit=ON_READ)` writes one "view" event when
the page is read and none on a POST (the service that follows writes its own), so a request leaves
exactly one; the old spelled-out preamble is gone from the views."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory

from kapclinic.accounts.models import Role
from kapclinic.audit.models import AuditEvent
from kapclinic.policy import ON_READ, Action, open_patient, read_audit

ROOT = Path(__file__).resolve().parents[2]  # kapclinic/


@pytest.mark.parametrize(
    ("method", "expected"), [("get", "view"), ("head", "view"), ("post", None), ("put", "view")]
)
def test_on_read_is_a_view_except_on_post(method: str, expected: str | None) -> None:
    request = getattr(RequestFactory(), method)("/")
    assert read_audit(request, ON_READ) == expected
    assert read_audit(request, "view") == "view"
    assert read_audit(request, None) is None


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "events"), [("get", 1), ("post", 0)])
def test_open_patient_on_read_audits_the_read_only(world: Any, method: str, events: int) -> None:
    request = getattr(RequestFactory(), method)("/")
    request.user = world.prescriber
    request.clinic = world.clinic
    request.role = Role.PRESCRIBER
    before = AuditEvent.objects.count()
    patient = open_patient(request, world.patient.pk, Action.VIEW_CLINICAL, audit=ON_READ)
    assert patient.pk == world.patient.pk
    assert AuditEvent.objects.count() - before == events


def test_no_view_spells_the_preamble_out() -> None:
    pattern = re.compile(r'None if (request\.method == "POST"|posting|editing) else "view"')
    found = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted(ROOT.rglob("*.py"))
        if "tests" not in p.parts and p.name != "policy.py"  # read_audit, the one place
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == [], "use open_patient(..., audit=ON_READ) (docs/CONVENTIONS.md, Permission)"
