"""A portal account only ever goes to an address the patient controls (issue 12, security probe).

The probe: as front desk, change a patient's email to one you own, send the portal invitation, set
the password from the link, sign in and read the patient's scores and plan. Now the invitation to a
changed address is refused for front desk (a clinician must send it), changing the address withdraws a
pending invitation, and a wrongly claimed account can be revoked and a fresh invitation sent."""

from __future__ import annotations

import re
from typing import Any

from django.core import mail
from django.forms.models import model_to_dict

from kapclinic.accounts.models import User
from kapclinic.audit.models import AuditEvent
from kapclinic.patients.forms import DemographicsForm
from kapclinic.patients.models import Patient
from kapclinic.testing.factories import make_patient

REAL = "robin.real@example.test"
ATTACKER = "desk.owned@example.test"
NEW_PASSWORD = "a-long-new-passphrase-42"


def _client(user: Any) -> Any:
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


def _change_email(client: Any, patient: Patient, email: str) -> Any:
    patient.refresh_from_db()
    fields = model_to_dict(patient, fields=DemographicsForm.Meta.fields)
    data = {k: ("" if v is None else v) for k, v in fields.items()}
    data.update(email=email, version=patient.version)
    return client.post(f"/patients/{patient.pk}/edit/", data)


def _invite(client: Any, patient: Patient, capture: Any) -> Any:
    with capture(execute=True):
        return client.post(f"/patients/{patient.pk}/portal-invite/", follow=True)


def _set_password_from(message: Any) -> Any:
    from django.test import Client

    link = re.search(r"http://[^\s]+/account/password-reset/[^\s]+/", message.body)
    assert link is not None
    anonymous = Client()
    path = link.group(0).split("127.0.0.1:8000", 1)[-1]
    form_page = anonymous.get(path, follow=True)
    return anonymous.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else path,
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )


def _details(patient: Patient) -> list[str]:
    events = AuditEvent.objects.filter(patient_id=patient.pk).order_by("id")
    return list(events.values_list("detail", flat=True))


def test_probe_front_desk_cannot_route_the_portal_to_their_own_address(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patient = make_patient(world.clinic, email=REAL, care_team=[world.therapist])
    desk = _client(world.front_desk)
    assert _change_email(desk, patient, ATTACKER).status_code == 302
    response = _invite(desk, patient, django_capture_on_commit_callbacks)
    assert "a clinician on the care team must send this invitation" in response.content.decode()
    patient.refresh_from_db()
    assert patient.user_id is None and not User.objects.filter(email=ATTACKER).exists()
    assert mail.outbox == []
    assert "portal_invite unconfirmed_email" in _details(patient)
    denied = AuditEvent.objects.get(patient_id=patient.pk, action="denied")
    assert denied.actor_id == world.front_desk.pk
    # The chart tells front desk who sends it instead of offering the button.
    chart = desk.get(f"/patients/{patient.pk}/").content.decode()
    assert "a clinician on the care team sends it" in chart and "Invite to patient portal" not in chart
    # The real patient can still be invited, at the address they registered with.
    assert _change_email(desk, patient, REAL).status_code == 302
    _invite(desk, patient, django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [[REAL]]


def test_changing_the_email_withdraws_a_pending_invitation(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patient = make_patient(world.clinic, email=REAL)
    desk = _client(world.front_desk)
    _invite(desk, patient, django_capture_on_commit_callbacks)
    patient.refresh_from_db()
    invited_pk = patient.user_id
    assert invited_pk is not None
    assert "Portal invitation sent" in desk.get(f"/patients/{patient.pk}/").content.decode()
    assert _change_email(desk, patient, ATTACKER).status_code == 302
    patient.refresh_from_db()
    assert patient.user_id is None
    assert not User.objects.filter(pk=invited_pk).exists()  # the emailed link dies with the account
    response = _set_password_from(mail.outbox[0])
    assert not User.objects.filter(email=REAL).exists()
    assert response.status_code in (200, 302)
    assert "fields=email portal_invite_revoked" in _details(patient)


def test_a_clinician_sends_the_invitation_to_a_changed_address_and_confirms_it(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patient = make_patient(world.clinic, email=REAL, care_team=[world.therapist])
    _change_email(_client(world.front_desk), patient, "robin.new@example.test")
    therapist = _client(world.therapist)
    assert "Invite to patient portal" in therapist.get(f"/patients/{patient.pk}/").content.decode()
    response = _invite(therapist, patient, django_capture_on_commit_callbacks)
    assert "Portal invitation sent to robin.new@example.test" in response.content.decode()
    patient.refresh_from_db()
    assert patient.user is not None and patient.user.email == "robin.new@example.test"
    assert patient.confirmed_email == "robin.new@example.test"
    assert [m.to for m in mail.outbox] == [["robin.new@example.test"]]
    assert "portal_invite email_confirmed_by_clinician" in _details(patient)


def test_admin_alone_cannot_confirm_a_changed_address(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patient = make_patient(world.clinic, email="")
    admin = _client(world.admin)
    _change_email(admin, patient, ATTACKER)  # an address added after registration is a changed one
    response = _invite(admin, patient, django_capture_on_commit_callbacks)
    assert "a clinician on the care team must send this invitation" in response.content.decode()
    assert mail.outbox == []


def test_a_wrongly_claimed_account_is_revoked_and_a_fresh_invitation_sent(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    patient = make_patient(world.clinic, email=REAL, care_team=[world.therapist])
    # Someone else claimed the portal: the address was wrong and a clinician sent the invitation to it.
    _change_email(_client(world.front_desk), patient, ATTACKER)
    _invite(_client(world.prescriber), patient, django_capture_on_commit_callbacks)
    _set_password_from(mail.outbox[0])
    intruder = User.objects.get(email=ATTACKER)
    assert intruder.has_usable_password()
    from django.test import Client

    intruder_client = Client()
    signed_in = intruder_client.post("/account/login/", {"username": ATTACKER, "password": NEW_PASSWORD})
    assert signed_in.status_code == 302
    assert intruder_client.get("/portal/").status_code == 200

    # The real patient calls: "that was not me". Front desk revokes, fixes the address, re-invites.
    desk = _client(world.front_desk)
    chart = desk.get(f"/patients/{patient.pk}/").content.decode()
    assert "Revoke portal access" in chart
    response = desk.post(f"/patients/{patient.pk}/portal-revoke/", follow=True)
    assert "Portal access revoked" in response.content.decode()
    intruder.refresh_from_db()
    patient.refresh_from_db()
    assert patient.user_id is None and not intruder.is_active
    assert intruder_client.get("/portal/").status_code == 302  # the open session is dead at once
    # The confirmed address is now the wrong one a clinician vouched for; the real one needs a clinician.
    _change_email(desk, patient, REAL)
    _invite(_client(world.therapist), patient, django_capture_on_commit_callbacks)
    patient.refresh_from_db()
    assert patient.user is not None and patient.user.email == REAL and patient.user.is_active
    assert mail.outbox[-1].to == [REAL]
    details = _details(patient)
    assert "portal_revoked claimed=1" in details
    assert details.count("portal_invite email_confirmed_by_clinician") == 2


def test_revoke_without_an_account_is_refused_with_a_sentence(world: Any) -> None:
    patient = make_patient(world.clinic)
    response = _client(world.front_desk).post(f"/patients/{patient.pk}/portal-revoke/", follow=True)
    assert "no portal account or invitation to revoke" in response.content.decode()
