from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from kapclinic.consent import services
from kapclinic.consent.models import ConsentDocument, ConsentSignature
from kapclinic.consent.selectors import consent_state
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.testing.factories import PASSWORD

pytestmark = pytest.mark.django_db


def _publish(world: Any, body: str = "Risks, alternatives, off-label use, no driving.") -> ConsentDocument:
    return services.document_publish(
        Actor(world.prescriber, world.clinic, "prescriber"), title="KAP consent", body=body
    )


def test_patient_signs_exact_text_in_portal(client: Any, world: Any) -> None:
    doc = _publish(world)
    client.force_login(world.patient_user)
    url = reverse("consent:sign")
    assert "off-label use" in client.get(url).content.decode()
    wrong = client.post(url, {"document_id": doc.pk, "agreed": "on", "typed_name": "Someone Else"})
    assert wrong.status_code == 400 and "must match the legal name" in wrong.content.decode()
    unticked = client.post(url, {"document_id": doc.pk, "typed_name": world.patient.legal_name})
    assert unticked.status_code == 400 and "Tick the box" in unticked.content.decode()
    assert ConsentSignature.objects.count() == 0
    ok = client.post(
        url, {"document_id": doc.pk, "agreed": "on", "typed_name": world.patient.legal_name.upper()}
    )
    assert ok.status_code == 302
    sig = ConsentSignature.objects.get()
    assert sig.signed_text == doc.full_text and sig.intact and sig.ip == "127.0.0.1"
    assert consent_state(world.patient).current


def test_signature_and_document_are_immutable(world: Any) -> None:
    doc = _publish(world)
    sig = services.consent_sign(
        Actor(world.patient_user, world.clinic, "patient"),
        world.patient,
        document_id=doc.pk,
        typed_name=world.patient.legal_name,
        agreed=True,
        ip="10.0.0.1",
    )
    sig.typed_name = "x"
    with pytest.raises(ValueError, match="cannot be changed"):
        sig.save()
    doc.body = "edited"
    with pytest.raises(ValueError, match="publish a new version"):
        doc.save()


def test_new_version_requires_reconsent(client: Any, world: Any) -> None:
    doc = _publish(world)
    services.consent_sign(
        Actor(world.patient_user, world.clinic, "patient"),
        world.patient,
        document_id=doc.pk,
        typed_name=world.patient.legal_name,
        agreed=True,
        ip=None,
    )
    client.force_login(world.admin)
    response = client.post(reverse("consent:document_new"), {"title": "KAP consent", "body": "New text v2."})
    assert response.status_code == 302
    state = consent_state(world.patient)
    assert not state.current and "must re-consent" in (state.refusal or "")
    # signing the old version is refused
    with pytest.raises(DomainError, match="changed while you were reading"):
        services.consent_sign(
            Actor(world.patient_user, world.clinic, "patient"),
            world.patient,
            document_id=doc.pk,
            typed_name=world.patient.legal_name,
            agreed=True,
            ip=None,
        )


def test_in_clinic_tablet_signature_records_witness(client: Any, world: Any) -> None:
    doc = _publish(world)
    client.force_login(world.front_desk)
    intro = client.get(reverse("consent:sign_in_clinic", args=[world.patient.pk])).content.decode()
    assert "Hand the tablet to the patient" in intro
    r = client.post(reverse("consent:kiosk_start", args=[world.patient.pk]))
    assert r.status_code == 302 and r["Location"] == reverse("consent:kiosk")
    response = client.post(
        reverse("consent:kiosk"),
        {"document_id": doc.pk, "agreed": "on", "typed_name": world.patient.legal_name},
    )
    assert response.status_code == 302
    sig = ConsentSignature.objects.get()
    assert sig.channel == "in_clinic" and sig.witnessed_by == world.front_desk
    assert "hand the tablet back" in client.get(reverse("consent:kiosk")).content.decode()
    back = client.post(reverse("consent:kiosk_exit"), {"password": PASSWORD})
    assert back["Location"] == reverse("consent:patient", args=[world.patient.pk])
    page = client.get(reverse("consent:patient", args=[world.patient.pk])).content.decode()
    assert "Unchanged" in page


def test_kiosk_shows_nothing_but_the_document_until_the_staff_password(client: Any, world: Any) -> None:
    _publish(world)
    client.force_login(world.front_desk)
    client.post(reverse("consent:kiosk_start", args=[world.patient.pk]))
    page = client.get(reverse("consent:kiosk")).content.decode()
    assert world.front_desk.full_name not in page and 'aria-label="Main"' not in page
    chart = reverse("patients:chart", args=[world.patient.pk])
    for path in (reverse("core:home"), reverse("patients:list"), chart):
        r = client.get(path)
        assert r.status_code == 302 and r["Location"] == reverse("consent:kiosk"), path
    r = client.get(reverse("patients:list"), HTTP_HX_REQUEST="true")
    assert r["HX-Redirect"] == reverse("consent:kiosk")
    # signing out is a way back to the staff view too: it needs the password like any other
    assert client.post(reverse("accounts:logout"))["Location"] == reverse("consent:kiosk")
    wrong = client.post(reverse("consent:kiosk_exit"), {"password": "guess"}, follow=True)
    assert "That password is not right" in wrong.content.decode()
    assert client.get(reverse("core:home"))["Location"] == reverse("consent:kiosk")


def test_kiosk_ends_the_staff_session_after_five_wrong_passwords(client: Any, world: Any) -> None:
    _publish(world)
    client.force_login(world.front_desk)
    client.post(reverse("consent:kiosk_start", args=[world.patient.pk]))
    for _ in range(5):
        last = client.post(reverse("consent:kiosk_exit"), {"password": "guess"})
    assert last["Location"] == reverse("accounts:login")
    r = client.get(reverse("patients:list"))
    assert r.status_code == 302 and reverse("accounts:login") in r["Location"]
