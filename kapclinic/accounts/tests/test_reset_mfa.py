"""manage.py reset_mfa: a lost authenticator is removed with a reason, audited, and refused on bad input."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.models import BackupCode, BackupCodeDevice
from kapclinic.audit.models import AuditEvent

REASON = "phone lost; identity checked in person by the clinic admin"


def _devices(user: Any) -> None:
    TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    device = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    BackupCode.objects.create(device=device, code_hash="0" * 64)


def test_reset_removes_both_devices_and_audits_each_clinic(world: Any) -> None:
    _devices(world.nurse)
    out = StringIO()
    call_command("reset_mfa", world.nurse.email.upper(), "--reason", REASON, stdout=out)
    assert not TOTPDevice.objects.filter(user=world.nurse).exists()
    assert not BackupCodeDevice.objects.filter(user=world.nurse).exists()
    assert not BackupCode.objects.exists()
    assert "enrol again" in out.getvalue()
    events = AuditEvent.objects.filter(action="admin", detail="mfa_reset", object_id=str(world.nurse.pk))
    assert [e.clinic_id for e in events] == [world.clinic.pk]
    assert REASON not in "".join(e.detail for e in events)


@pytest.mark.parametrize(
    ("email", "reason", "sentence"),
    [
        ("nobody@example.test", REASON, "No account has the address"),
        (None, "lost", "reason of at least 10 characters"),
        (None, REASON, "has no two-factor device"),
    ],
)
def test_bad_input_changes_nothing(world: Any, email: str | None, reason: str, sentence: str) -> None:
    TOTPDevice.objects.create(user=world.therapist, name="Authenticator app", confirmed=True)
    before = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=sentence):
        call_command("reset_mfa", email or world.prescriber.email, "--reason", reason)
    assert TOTPDevice.objects.filter(user=world.therapist).count() == 1
    assert AuditEvent.objects.count() == before


def test_patients_are_not_staff(world: Any) -> None:
    with pytest.raises(CommandError, match="is not a staff member"):
        call_command("reset_mfa", world.patient_user.email, "--reason", REASON)
