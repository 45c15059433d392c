"""Two-factor enrolment needs the emailed single-use link, not just a password (issue 12, probe).

The probe: with MFA required, a staff member who had not enrolled yet was shown the authenticator
secret on a password-only session, so a stolen password was enough to enrol the thief's phone and open
charts. Now a password-only session of an unenrolled staff member reaches only the enrolment page,
which shows a secret only after the person opened the link emailed to them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.core import mail
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from kapclinic.accounts.models import Membership, MfaEnrolmentLink
from kapclinic.accounts.services import _new_enrolment_link
from kapclinic.audit.models import AuditEvent
from kapclinic.core.tokens import token_hash
from kapclinic.testing.factories import PASSWORD, actor_for, make_staff

NEEDS_LINK = "open the enrolment link we emailed you, or ask an admin to send a new one"
pytestmark = pytest.mark.usefixtures("clock_frozen")


def _password_only(client: Any, email: str) -> None:
    assert client.post("/account/login/", {"username": email, "password": PASSWORD}).status_code == 302


def _link_path(world: Any, user: Any) -> str:
    url = _new_enrolment_link(actor_for(world.admin, world.clinic), user)
    return url.split("127.0.0.1:8000", 1)[1]


def _path_in(body: str) -> str:
    found = re.search(r"http://127\.0\.0\.1:8000(/account/mfa/enrol/[^\s]+/)", body)
    assert found is not None
    return found.group(1)


def _details(prefix: str) -> list[str]:
    events = AuditEvent.objects.filter(detail__startswith=prefix).exclude(action="denied").order_by("id")
    return list(events.values_list("detail", flat=True))


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
@pytest.mark.parametrize(
    "path",
    ["/home/", "/patients/", "/account/backup-codes/", "/account/staff/", "/schedule/", "/admin/"],
)
def test_a_password_alone_reaches_nothing_and_shows_no_secret(world: Any, client: Any, path: str) -> None:
    _password_only(client, world.admin.email)
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/account/mfa/")
    page = client.get(response["Location"])
    text = page.content.decode()
    assert page.status_code == 200 and NEEDS_LINK in text
    assert "Or enter this key" not in text and "data:image/svg" not in text
    # Guessing codes against a device that does not exist gets nowhere either.
    assert client.post("/account/mfa/", {"token": "123456"}).status_code == 400
    assert not TOTPDevice.objects.filter(user=world.admin).exists()


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_the_link_enrols_once_and_then_charts_open(world: Any, client: Any) -> None:
    path = _link_path(world, world.prescriber)
    token = path.rstrip("/").rsplit("/", 1)[1]
    link = MfaEnrolmentLink.objects.get(user=world.prescriber)
    assert link.token_hash == token_hash(token) and token not in link.token_hash  # only the hash
    assert link.expires_at == link.created_at + dt.timedelta(hours=72)

    # Opened before signing in: sign in first, the token waits in the session (not in the address).
    opened = client.get(path)
    assert opened.status_code == 302
    assert opened["Location"] == "/account/login/?next=%2Faccount%2Fmfa%2Fenrol%2F"
    assert token not in opened["Location"]
    response = client.post(
        "/account/login/?next=/account/mfa/enrol/", {"username": world.prescriber.email, "password": PASSWORD}
    )
    assert response["Location"] == "/account/mfa/enrol/"
    assert client.get("/account/mfa/enrol/")["Location"] == "/account/mfa/"
    setup = client.get("/account/mfa/").content.decode()
    assert "Or enter this key" in setup
    device = TOTPDevice.objects.get(user=world.prescriber, confirmed=False)
    assert client.post("/account/mfa/", {"token": f"{totp(device.bin_key):06d}"}).status_code == 302
    assert client.get(f"/patients/{world.patient.pk}/").status_code == 200
    assert TOTPDevice.objects.get(user=world.prescriber).confirmed

    # The same link again is refused with a sentence (a spent link: see the next test).
    again = client.get(path)
    assert again.status_code == 400 and "already set up" in again.content.decode()
    assert _details("mfa_") == [
        f"mfa_enrolment_link_sent user={world.prescriber.pk} hours=72",
        "mfa_enrolment_link_opened",
        "mfa_enrolled",
    ]
    assert AuditEvent.objects.filter(action="denied", detail="mfa_enrolment_link enrolled").count() == 1


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_an_opened_link_is_spent_even_if_enrolment_is_not_finished(world: Any, client: Any) -> None:
    path = _link_path(world, world.nurse)
    _password_only(client, world.nurse.email)
    assert client.get(path)["Location"] == "/account/mfa/"
    from django.test import Client

    thief = Client()
    _password_only(thief, world.nurse.email)
    response = thief.get(path)  # a second session with the same link learns nothing
    assert response.status_code == 400 and "already been used" in response.content.decode()
    assert AuditEvent.objects.filter(action="denied", detail="mfa_enrolment_link used").count() == 1
    assert "Or enter this key" not in thief.get("/account/mfa/").content.decode()


@override_settings(MFA_REQUIRED_FOR_STAFF=True, MFA_ENROLMENT_LINK_HOURS=72)
def test_an_expired_link_is_refused_with_a_sentence(world: Any, client: Any, clock_frozen: Any) -> None:
    path = _link_path(world, world.nurse)
    clock_frozen.advance(dt.timedelta(hours=72, seconds=1))
    _password_only(client, world.nurse.email)
    response = client.get(path)
    text = response.content.decode()
    assert response.status_code == 400
    assert "This enrolment link has expired. Ask an admin to send you a new one from the Staff page." in text
    assert not TOTPDevice.objects.filter(user=world.nurse).exists()
    assert AuditEvent.objects.filter(action="denied", detail="mfa_enrolment_link expired").exists()
    assert MfaEnrolmentLink.objects.get(user=world.nurse).used_at is None


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_someone_elses_link_and_an_unknown_token_are_refused(world: Any, client: Any) -> None:
    path = _link_path(world, world.nurse)
    _password_only(client, world.therapist.email)
    response = client.get(path)
    assert response.status_code == 400 and "sent to someone else" in response.content.decode()
    assert MfaEnrolmentLink.objects.get(user=world.nurse).used_at is None  # still good for the nurse
    response = client.get("/account/mfa/enrol/made-up-token/")
    assert response.status_code == 400 and "not valid" in response.content.decode()


def test_admin_resends_a_link_which_replaces_the_old_one(
    world: Any, client: Any, django_capture_on_commit_callbacks: Any
) -> None:
    old_path = _link_path(world, world.nurse)
    membership = Membership.objects.get(user=world.nurse, clinic=world.clinic)
    client.force_login(world.admin)
    staff_page = client.get("/account/staff/").content.decode()
    assert "Not set up" in staff_page and f"/account/staff/{membership.pk}/mfa-link/" in staff_page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/account/staff/{membership.pk}/mfa-link/", follow=True)
    assert "Enrolment link sent to" in response.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [world.nurse.email]
    new_path = _path_in(str(mail.outbox[0].body))
    assert new_path != old_path
    event = AuditEvent.objects.filter(detail__startswith="mfa_enrolment_link_sent").last()
    assert event is not None and event.actor_id == world.admin.pk and event.action == "admin"

    nurse = type(client)()
    _password_only(nurse, world.nurse.email)
    refused = nurse.get(old_path)
    assert refused.status_code == 400 and "replaced by a newer one" in refused.content.decode()
    assert nurse.get(new_path)["Location"] == "/account/mfa/"


def test_no_link_for_someone_already_enrolled_or_deactivated(world: Any, client: Any) -> None:
    TOTPDevice.objects.create(user=world.nurse, name="app", confirmed=True)
    client.force_login(world.admin)
    membership = Membership.objects.get(user=world.nurse, clinic=world.clinic)
    response = client.post(f"/account/staff/{membership.pk}/mfa-link/", follow=True)
    assert "already set up two-factor sign-in" in response.content.decode()
    other = make_staff(world.clinic, "therapist")
    gone = Membership.objects.get(user=other)
    Membership.objects.filter(pk=gone.pk).update(is_active=False)
    response = client.post(f"/account/staff/{gone.pk}/mfa-link/", follow=True)
    assert "reactivate them first" in response.content.decode()
    assert not MfaEnrolmentLink.objects.exists() and mail.outbox == []


def test_only_admins_send_links(world: Any, client: Any) -> None:
    membership = Membership.objects.get(user=world.nurse, clinic=world.clinic)
    client.force_login(world.front_desk)
    assert client.post(f"/account/staff/{membership.pk}/mfa-link/").status_code == 403
    assert not MfaEnrolmentLink.objects.exists()


@override_settings(MFA_REQUIRED_FOR_STAFF=True)
def test_a_session_only_ever_confirms_the_secret_its_own_link_made(world: Any, client: Any) -> None:
    from django.test import Client

    first = _link_path(world, world.nurse)
    _password_only(client, world.nurse.email)
    client.get(first)
    shown = TOTPDevice.objects.get(user=world.nurse, confirmed=False)
    second = _link_path(world, world.nurse)  # re-sent meanwhile and opened in another browser
    other = Client()
    _password_only(other, world.nurse.email)
    assert other.get(second)["Location"] == "/account/mfa/"
    fresh = TOTPDevice.objects.get(user=world.nurse, confirmed=False)
    assert fresh.pk != shown.pk  # the first session's secret is void...
    page = client.get("/account/mfa/").content.decode()
    assert NEEDS_LINK in page and "Or enter this key" not in page  # ...and it is not shown the new one
    assert client.post("/account/mfa/", {"token": f"{totp(fresh.bin_key):06d}"}).status_code == 400
    assert other.post("/account/mfa/", {"token": f"{totp(fresh.bin_key):06d}"}).status_code == 302
