"""Two-factor backup codes: creation (shown once, stored hashed), single use at sign-in, replacement."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.models import BackupCode, BackupCodeDevice, backup_code_hash, normalise_backup_code
from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.testing.factories import PASSWORD

PAGE = "/account/backup-codes/"
VERIFY = "/account/mfa/"
VERIFY_BACKUP = "/account/mfa/backup/"
CODE_RE = re.compile(r"<code>([2-9a-z]{5}-[2-9a-z]{5})</code>")
WRONG_CODE = "zzzzz-zzzzz"  # well formed; the odds of it being issued are 31**-10 per code


def _authenticator(user: Any) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


def _sign_in(client: Any, user: Any) -> None:
    """Password, then the authenticator code: a fully verified staff session."""
    assert client.post("/account/login/", {"username": user.email, "password": PASSWORD}).status_code == 302
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    response = client.post(VERIFY, {"token": f"{totp(device.bin_key):06d}"})
    assert response.status_code == 302, response.content.decode()


def _password_only(client: Any, user: Any) -> None:
    client.logout()
    assert client.post("/account/login/", {"username": user.email, "password": PASSWORD}).status_code == 302


def _generate(client: Any, **data: Any) -> list[str]:
    response = client.post(PAGE, data)
    assert response.status_code == 200, response.content.decode()
    return CODE_RE.findall(response.content.decode())


def _is_verified(client: Client) -> bool:
    response = client.get("/patients/")
    return response.status_code == 200


@pytest.fixture
def staff(world: Any, client: Any) -> Any:
    """world.prescriber with an authenticator app, signed in and verified on `client`."""
    _authenticator(world.prescriber)
    _sign_in(client, world.prescriber)
    return world.prescriber


def test_generation_shows_ten_distinct_codes_once(staff: Any, client: Any) -> None:
    before = client.get(PAGE)
    assert before.status_code == 200
    assert "You have no backup codes yet" in before.content.decode()
    assert "no-store" in before["Cache-Control"]

    response = client.post(PAGE)
    page = response.content.decode()
    codes = CODE_RE.findall(page)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "shown only this once" in page
    assert "no-store" in response["Cache-Control"]  # the page holding the codes is never cached

    after = client.get(PAGE)
    text = after.content.decode()
    assert "no-store" in after["Cache-Control"]
    assert "<strong>10</strong> unused backup codes of 10" in text
    assert not any(code in text or normalise_backup_code(code) in text for code in codes)

    event = AuditEvent.objects.filter(actor=staff, action="create").get()
    assert event.detail == "mfa_backup_codes_generated count=10"
    assert not any(normalise_backup_code(code) in event.detail for code in codes)


def test_the_database_holds_keyed_hashes_not_codes(staff: Any, client: Any) -> None:
    codes = [normalise_backup_code(c) for c in _generate(client)]
    rows = list(BackupCode.objects.filter(device__user=staff))
    assert len(rows) == 10
    stored = {row.code_hash for row in rows}
    for code in codes:
        assert code not in stored
        assert hashlib.sha256(code.encode()).hexdigest() not in stored  # keyed, not a bare hash
        assert backup_code_hash(code) in stored
    assert all(len(h) == 64 and not any(code in h for code in codes) for h in stored)


def test_each_code_works_once(staff: Any, client: Any) -> None:
    first, second = _generate(client)[:2]
    _password_only(client, staff)
    assert not _is_verified(client)
    prompt = client.get(f"{VERIFY}?next=/patients/").content.decode()
    assert 'href="/account/mfa/backup/?next=%2Fpatients%2F"' in prompt  # "Use a backup code instead"

    response = client.post(f"{VERIFY_BACKUP}?next=/patients/", {"code": first.upper().replace("-", " ")})
    assert response.status_code == 302 and response["Location"] == "/patients/"
    assert _is_verified(client)
    backup_device = BackupCodeDevice.objects.get(user=staff)
    assert client.session[DEVICE_ID_SESSION_KEY] == backup_device.persistent_id
    login = AuditEvent.objects.filter(actor=staff, action="login", detail="mfa_backup_code").get()
    assert normalise_backup_code(first) not in login.detail
    assert backup_device.unused_count() == 9

    _password_only(client, staff)
    again = client.post(VERIFY_BACKUP, {"code": first})
    assert again.status_code == 400
    assert "not valid or has already been used" in again.content.decode()
    assert not _is_verified(client)

    TOTPDevice.objects.get(user=staff).throttle_reset()  # the refusal slowed down the next try
    assert client.post(VERIFY_BACKUP, {"code": second}).status_code == 302
    assert _is_verified(client)
    assert backup_device.unused_count() == 8


def test_wrong_code_is_refused_and_changes_no_code(staff: Any, client: Any) -> None:
    codes = _generate(client)
    assert WRONG_CODE not in codes
    hashes_before = set(BackupCode.objects.values_list("code_hash", "used_at"))
    _password_only(client, staff)

    response = client.post(VERIFY_BACKUP, {"code": WRONG_CODE})
    assert response.status_code == 400
    page = response.content.decode()
    assert "not valid or has already been used" in page
    assert 'aria-invalid="true"' in page  # the error is tied to the field for screen readers
    assert set(BackupCode.objects.values_list("code_hash", "used_at")) == hashes_before
    assert not _is_verified(client)
    failed = AuditEvent.objects.filter(actor=staff, action="login_failed").get()
    assert failed.detail == "mfa_backup_code"

    # It counts against the authenticator's throttle: even the right code must wait now.
    totp_device = TOTPDevice.objects.get(user=staff)
    assert totp_device.throttling_failure_count == 1
    throttled = client.post(VERIFY_BACKUP, {"code": codes[0]})
    assert throttled.status_code == 400 and "Too many wrong codes" in throttled.content.decode()
    assert BackupCodeDevice.objects.get(user=staff).unused_count() == 10
    totp_device.throttle_reset()
    assert client.post(VERIFY_BACKUP, {"code": codes[0]}).status_code == 302


def test_a_malformed_code_gets_a_format_hint_and_no_attempt(staff: Any, client: Any) -> None:
    _generate(client)
    _password_only(client, staff)
    response = client.post(VERIFY_BACKUP, {"code": "123456"})
    assert response.status_code == 400
    assert "has 10 letters and digits" in response.content.decode()
    assert TOTPDevice.objects.get(user=staff).throttling_failure_count == 0
    assert not AuditEvent.objects.filter(actor=staff, action="login_failed").exists()


def test_regeneration_asks_first_then_invalidates_the_old_set(staff: Any, client: Any) -> None:
    old = _generate(client)
    page = client.get(PAGE).content.decode()
    assert "replaces your current codes" in page and 'name="confirm"' in page

    refused = client.post(PAGE)  # no confirmation ticked
    assert refused.status_code == 400
    assert "Tick the box" in refused.content.decode()
    assert not CODE_RE.findall(refused.content.decode())
    assert {backup_code_hash(normalise_backup_code(c)) for c in old} == set(
        BackupCode.objects.values_list("code_hash", flat=True)
    )

    new = _generate(client, confirm="on")
    assert len(new) == 10 and not set(new) & set(old)
    assert BackupCode.objects.filter(device__user=staff).count() == 10

    _password_only(client, staff)
    assert client.post(VERIFY_BACKUP, {"code": old[0]}).status_code == 400
    TOTPDevice.objects.get(user=staff).throttle_reset()
    assert client.post(VERIFY_BACKUP, {"code": new[0]}).status_code == 302


def test_few_codes_left_are_announced_after_sign_in(staff: Any, client: Any) -> None:
    codes = _generate(client)
    device = BackupCodeDevice.objects.get(user=staff)
    spent = [backup_code_hash(normalise_backup_code(c)) for c in codes[:7]]
    BackupCode.objects.filter(device=device, code_hash__in=spent).update(used_at=clock.now())
    _password_only(client, staff)
    response = client.post(VERIFY_BACKUP, {"code": codes[7]}, follow=True)
    assert "You have 2 backup codes left" in response.content.decode()

    _password_only(client, staff)
    response = client.post(VERIFY_BACKUP, {"code": codes[8]}, follow=True)
    assert "You have 1 backup code left" in response.content.decode()


def test_plenty_of_codes_left_gives_no_warning(staff: Any, client: Any) -> None:
    codes = _generate(client)
    _password_only(client, staff)
    response = client.post(VERIFY_BACKUP, {"code": codes[0]}, follow=True)
    text = response.content.decode()
    assert "Signed in with a backup code" in text and "backup codes left" not in text


def test_anonymous_and_patients_cannot_reach_the_page(world: Any, client: Any) -> None:
    anonymous = client.get(PAGE)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/account/login/")
    assert client.post(PAGE).status_code == 302
    client.force_login(world.patient_user)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE).status_code == 403
    assert not BackupCodeDevice.objects.exists()


def test_staff_without_an_authenticator_are_sent_to_set_one_up(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "Set up an authenticator app first" in page.content.decode()
    assert client.post(PAGE).status_code == 400
    assert not BackupCodeDevice.objects.exists()


def test_codes_are_never_made_for_an_unverified_session(world: Any, client: Any) -> None:
    _authenticator(world.nurse)
    _password_only(client, world.nurse)
    response = client.post(PAGE)
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    assert not BackupCodeDevice.objects.exists()
    # Nor through the view itself, should the middleware's cached "not enrolled" flag be stale.
    session = client.session
    session["kap_mfa_enrolled"] = False
    session.save()
    response = client.post(PAGE)
    assert response.status_code == 302 and response["Location"].startswith(VERIFY)
    assert not BackupCodeDevice.objects.exists()


def test_backup_codes_do_not_work_without_an_authenticator(staff: Any, client: Any) -> None:
    codes = _generate(client)
    TOTPDevice.objects.filter(user=staff).delete()  # e.g. an operator removed a lost phone's device
    _password_only(client, staff)
    assert client.post(VERIFY_BACKUP, {"code": codes[0]}).status_code == 400
    assert BackupCodeDevice.objects.get(user=staff).unused_count() == 10


def test_the_next_address_must_stay_on_this_site(staff: Any, client: Any) -> None:
    codes = _generate(client)
    _password_only(client, staff)
    response = client.post(f"{VERIFY_BACKUP}?next=https://evil.example/", {"code": codes[0]})
    assert response.status_code == 302 and response["Location"] == "/home/"


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_first_authenticator_setup_leads_to_backup_codes(world: Any, client: Any) -> None:
    from kapclinic.accounts.services import _new_enrolment_link
    from kapclinic.testing.factories import actor_for

    _password_only(client, world.therapist)
    url = _new_enrolment_link(actor_for(world.admin, world.clinic), world.therapist)
    client.get(url.split("8000", 1)[1])  # the emailed link makes the unconfirmed device
    client.get(VERIFY)  # and this page shows its QR code
    device = TOTPDevice.objects.get(user=world.therapist)
    response = client.post(f"{VERIFY}?next=/patients/", {"token": f"{totp(device.bin_key):06d}"})
    assert response.status_code == 302
    assert response["Location"] == "/account/backup-codes/?next=%2Fpatients%2F"
    page = client.get(response["Location"]).content.decode()
    assert "Create 10 backup codes" in page


def test_verified_mfa_page_links_to_backup_codes(staff: Any, client: Any) -> None:
    page = client.get(VERIFY).content.decode()
    assert "Two-factor sign-in is on" in page and 'href="/account/backup-codes/"' in page
    _generate(client)
    assert "You have 10 unused backup codes of 10" in client.get(VERIFY).content.decode()
    assert client.get(f"{VERIFY}?next=/patients/")["Location"] == "/patients/"
