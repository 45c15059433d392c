from __future__ import annotations

from typing import Any

from django.core import mail
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.models import Membership, User
from kapclinic.testing.factories import PASSWORD


def _login(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post("/account/login/", {"username": email, "password": password})


def test_login_with_email_and_password(world: Any, client: Any) -> None:
    response = _login(client, world.nurse.email.upper())
    assert response.status_code == 302
    assert client.get("/home/").status_code == 200


def test_wrong_password_rerenders_with_a_sentence(world: Any, client: Any) -> None:
    response = _login(client, world.nurse.email, "nope")
    assert response.status_code == 200
    assert "do not match an active account" in response.content.decode()


@override_settings(AXES_FAILURE_LIMIT=3)
def test_lockout_after_repeated_failures(world: Any, client: Any) -> None:
    for _ in range(3):
        _login(client, world.nurse.email, "wrong")
    response = _login(client, world.nurse.email)  # right password, but locked
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_passwords_are_hashed_with_argon2_in_production_settings() -> None:
    from django.conf import settings

    assert "Argon2PasswordHasher" in settings.PASSWORD_HASHERS[1]  # tests put a fast hasher first


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_mandatory_mfa_setup_then_verify(world: Any, client: Any) -> None:
    from kapclinic.accounts.services import _new_enrolment_link
    from kapclinic.testing.factories import actor_for

    _login(client, world.prescriber.email)
    response = client.get(f"/patients/{world.patient.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/account/mfa/")
    url = _new_enrolment_link(actor_for(world.admin, world.clinic), world.prescriber)
    assert client.get(url.split("127.0.0.1:8000", 1)[1]).status_code == 302
    page = client.get("/account/mfa/").content.decode()
    assert "Set up two-factor sign-in" in page and "Or enter this key" in page
    device = TOTPDevice.objects.get(user=world.prescriber)
    bad = client.post("/account/mfa/", {"token": "000000" if totp(device.bin_key) != 0 else "111111"})
    assert "not valid" in bad.content.decode()
    device.refresh_from_db()
    device.throttle_reset()  # django-otp slows down guessing after a wrong code
    good = client.post("/account/mfa/", {"token": f"{totp(device.bin_key):06d}"})
    assert good.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 200


@override_settings(MFA_REQUIRED_FOR_STAFF=False)
def test_enrolled_staff_must_verify_even_when_not_mandatory(world: Any, client: Any) -> None:
    TOTPDevice.objects.create(user=world.nurse, name="app", confirmed=True)
    _login(client, world.nurse.email)
    assert client.get("/patients/").status_code == 302


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_patients_are_not_forced_into_mfa(world: Any, client: Any) -> None:
    _login(client, world.patient_user.email)
    assert client.get("/portal/").status_code == 200


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=15)
def test_idle_staff_session_times_out(world: Any, client: Any, clock_frozen: Any) -> None:
    import datetime as dt

    client.force_login(world.nurse)
    assert client.get("/patients/").status_code == 200
    clock_frozen.advance(dt.timedelta(minutes=16))
    response = client.get("/patients/")
    assert response.status_code == 302 and "/account/login/" in response["Location"]
    assert client.get("/patients/").status_code == 302  # really signed out


def test_deactivated_user_loses_access_at_once(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    assert client.get("/patients/").status_code == 200
    admin = Client_for(world.admin)
    membership = Membership.objects.get(user=world.nurse, clinic=world.clinic)
    assert admin.post(f"/account/staff/{membership.pk}/toggle/").status_code == 302
    assert not User.objects.get(pk=world.nurse.pk).is_active
    assert client.get("/patients/").status_code == 302  # the open session no longer works
    assert _login(client, world.nurse.email).status_code == 200  # nor can they sign in again


def Client_for(user: Any) -> Any:
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


def test_admin_invites_staff_who_sets_a_password(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client.force_login(world.admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/account/staff/", {"full_name": "Nia New", "email": "nia@example.test", "role": "nurse"}
        )
    assert response.status_code == 302
    assert Membership.objects.get(user__email="nia@example.test").role == "nurse"
    assert len(mail.outbox) == 1
    assert "/account/mfa/enrol/" in mail.outbox[0].body  # the two-factor enrolment link comes along
    link = next(line for line in mail.outbox[0].body.splitlines() if "/account/password-reset/" in line)
    path = link.split("8000", 1)[1] if "8000" in link else link
    anon = type(client)()
    form = anon.get(path, follow=True)
    assert form.status_code == 200 and "Choose a password" in form.content.decode()
    done = anon.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-long-new-pass-42", "new_password2": "a-long-new-pass-42"},
    )
    assert done.status_code == 302
    assert _login(anon, "nia@example.test", "a-long-new-pass-42").status_code == 302


def test_invite_rejects_existing_member_with_a_sentence(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    response = client.post("/account/staff/", {"full_name": "X", "email": world.nurse.email, "role": "nurse"})
    assert response.status_code == 200
    assert "already a member of this clinic" in response.content.decode()
    assert len(mail.outbox) == 0


def test_admin_cannot_deactivate_themselves(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    membership = Membership.objects.get(user=world.admin)
    assert client.post(f"/account/staff/{membership.pk}/toggle/").status_code == 403


def test_admin_cannot_touch_another_clinics_staff(world: Any, client: Any) -> None:
    client.force_login(world.admin)
    membership = Membership.objects.get(user=world.other_clinic_staff)
    assert client.post(f"/account/staff/{membership.pk}/toggle/").status_code == 404


def test_multi_clinic_staff_switch_clinic(world: Any, client: Any) -> None:
    Membership.objects.create(user=world.prescriber, clinic=world.other_clinic, role="prescriber")
    client.force_login(world.prescriber)
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 200
    client.post("/account/clinic/", {"clinic": world.other_clinic.pk})
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 404
    assert client.get(f"/patients/{world.other_clinic_patient.pk}/").status_code == 200


def test_password_reset_sends_a_single_use_link(world: Any, client: Any) -> None:
    response = client.post("/account/password-reset/", {"email": world.nurse.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "/account/password-reset/" in mail.outbox[0].body
