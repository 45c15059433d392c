"""Printable clinical records (issue 16): each PDF read back with pypdf carries the patient's name and
record number on every page and the record's key content; every download is an audited export; front
desk and admins cannot print clinical records; patients print from the portal what the portal shows."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.urls import reverse
from pypdf import PdfReader

from kapclinic.audit.models import AuditEvent
from kapclinic.documents.models import Letter
from kapclinic.documents.svgchart import trajectory_svg
from kapclinic.documents.testing import session_with_monitoring, signed_consent, signed_note, signed_plan

pytestmark = pytest.mark.django_db


def pages(response: Any) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    return [p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages]


def assert_every_page_names_the_patient(texts: list[str], patient: Any) -> None:
    for i, text in enumerate(texts, start=1):
        assert patient.legal_name in text and patient.mrn in text, (
            f"page {i} lacks the patient's name or record"
        )
        assert f"Page {i} of {len(texts)}" in text


def exports(patient: Any) -> list[str]:
    return list(AuditEvent.objects.filter(patient=patient, action="export").values_list("detail", flat=True))


def test_session_record_with_rems_monitoring(world: Any, client: Any) -> None:
    s = session_with_monitoring(world.patient, world.prescriber, world.nurse, world.clinic)
    client.force_login(world.prescriber)
    url = reverse("documents:session_pdf", kwargs={"patient_id": world.patient.pk, "session_id": s.pk})
    texts = pages(client.get(url))
    assert_every_page_names_the_patient(texts, world.patient)
    text = "\n".join(texts)
    for expected in (
        "Dosing session record",
        "Esketamine nasal spray",
        "56 mg",
        "LOT-SYN-1",
        "BP 128/80",
        "Transient nausea",
        "REMS patient monitoring record",
        world.nurse.full_name,
        "Sam Escort",
    ):
        assert expected in text, expected
    assert exports(world.patient) == ["pdf session Letter"]


def test_paper_a4_and_letter(world: Any, client: Any) -> None:
    s = session_with_monitoring(world.patient, world.prescriber, world.nurse, world.clinic)
    client.force_login(world.nurse)
    url = reverse("documents:session_pdf", kwargs={"patient_id": world.patient.pk, "session_id": s.pk})
    for query, width in (("", 612), ("?paper=Letter", 612), ("?paper=A4", 595)):
        reader = PdfReader(io.BytesIO(client.get(url + query).content))
        assert round(float(reader.pages[0].mediabox.width)) == width
    assert client.get(url + "?paper=A5").status_code == 400


def test_signed_consent_with_version_and_signature(world: Any, client: Any) -> None:
    sig = signed_consent(world.patient, version=3)
    client.force_login(world.therapist)
    url = reverse("documents:consent_pdf", kwargs={"patient_id": world.patient.pk, "signature_id": sig.pk})
    texts = pages(client.get(url))
    assert_every_page_names_the_patient(texts, world.patient)
    text = " ".join(" ".join(texts).split())
    assert "version 3" in text and "Consent version 3" in text
    assert f"Signed by (typed name) {world.patient.legal_name}" in text
    assert sig.text_sha256 in text.replace(" ", "")
    assert "I understand the risks" in text


def test_signed_note_with_addenda(world: Any, client: Any) -> None:
    note = signed_note(
        world.patient, world.therapist, world.clinic, addendum="Synthetic addendum: follow-up call done."
    )
    client.force_login(world.prescriber)
    url = reverse("documents:note_pdf", kwargs={"patient_id": world.patient.pk, "note_id": note.pk})
    text = "\n".join(pages(client.get(url)))
    assert f"Signed by {world.therapist.full_name}" in " ".join(text.split())
    assert "Synthetic addendum: follow-up call done." in text
    assert "Addendum by" in text


def test_an_unsigned_note_is_not_printed(world: Any, client: Any) -> None:
    from kapclinic.notes import services
    from kapclinic.testing.factories import actor_for

    draft = services.note_create(actor_for(world.therapist, world.clinic), world.patient, template_key="soap")
    client.force_login(world.therapist)
    url = reverse("documents:note_pdf", kwargs={"patient_id": world.patient.pk, "note_id": draft.pk})
    assert client.get(url).status_code == 404


def test_treatment_plan_and_measures_summary_with_chart(world: Any, client: Any) -> None:
    from kapclinic.measures.services import response_submit
    from kapclinic.testing.factories import actor_for

    plan = signed_plan(world.patient, world.prescriber)
    for answers in ([2, 2, 2, 2, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0, 0]):
        response_submit(
            actor_for(world.nurse, world.clinic), world.patient, instrument="PHQ-9", version=None,
            answers=answers, source="paper", entered_by=world.nurse,
        )  # fmt: skip
    client.force_login(world.prescriber)
    text = "\n".join(
        pages(
            client.get(
                reverse("documents:plan_pdf", kwargs={"patient_id": world.patient.pk, "plan_id": plan.pk})
            )
        )
    )
    assert (
        "Feel like myself again" in text
        and "F33.1" in text
        and f"Signed by {world.prescriber.full_name}" in text
    )
    response = client.get(reverse("documents:measures_pdf", kwargs={"patient_id": world.patient.pk}))
    texts = pages(response)
    assert_every_page_names_the_patient(texts, world.patient)
    text = "\n".join(texts)
    assert "PHQ-9" in text and "Baseline 12, latest 4" in text
    # the trajectory is drawn as vector graphics in the page (inline SVG rendered by WeasyPrint): each
    # point's dot is a circle of four Bézier curves, and nothing else on the page is curved
    contents = PdfReader(io.BytesIO(response.content)).pages[0].get_contents()
    assert contents is not None and contents.get_data().count(b" c\n") == 4 * 2


def test_trajectory_svg_escapes_and_draws_each_point() -> None:
    import datetime as dt

    svg = str(
        trajectory_svg(
            "<PHQ-9>", [(dt.date(2026, 1, 1), 18), (dt.date(2026, 2, 1), 9), (dt.date(2026, 3, 1), 4)], 27
        )
    )
    assert svg.count("<circle") == 3 and "&lt;PHQ-9&gt;" in svg and "<PHQ-9>" not in svg
    assert "2026-01-01" in svg and "2026-03-01" in svg and "<script" not in svg


def test_referral_letter_written_signed_and_printed(world: Any, client: Any) -> None:
    client.force_login(world.therapist)
    url = reverse("documents:records", kwargs={"patient_id": world.patient.pk})
    form = {
        "kind": "referral",
        "recipient_name": "Dr Ada Synthetic",
        "recipient_organisation": "Harbor Family Practice",
        "subject": "Referral for ongoing care",
        "body": "Thank you for seeing this patient.",
        "include_summary": "on",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    letter = Letter.objects.get()
    assert letter.author == world.therapist
    assert AuditEvent.objects.filter(action="sign", object_id=str(letter.pk)).exists()
    pdf = client.get(
        reverse("documents:letter_pdf", kwargs={"patient_id": world.patient.pk, "letter_id": letter.pk})
    )
    texts = pages(pdf)
    assert_every_page_names_the_patient(texts, world.patient)
    text = " ".join(" ".join(texts).split())
    assert (
        "Dr Ada Synthetic" in text
        and "Harbor Family Practice" in text
        and "Thank you for seeing this patient." in text
    )
    assert (
        f"Signed electronically by {world.therapist.full_name}" in text and "Summary from the chart" in text
    )
    # an empty letter is refused with the form's sentences, nothing saved
    assert client.post(url, {"kind": "referral"}).status_code == 400 and Letter.objects.count() == 1


@pytest.mark.parametrize("persona", ["front_desk", "admin"])
def test_front_desk_and_admin_cannot_print_clinical_records(world: Any, client: Any, persona: str) -> None:
    sig = signed_consent(world.patient)
    client.force_login(getattr(world, persona))
    for url in (
        reverse("documents:consent_pdf", kwargs={"patient_id": world.patient.pk, "signature_id": sig.pk}),
        reverse("documents:measures_pdf", kwargs={"patient_id": world.patient.pk}),
        reverse("documents:records", kwargs={"patient_id": world.patient.pk}),
    ):
        assert client.get(url).status_code == 403
    assert exports(world.patient) == []


def test_patient_downloads_what_the_portal_shows(world: Any, client: Any) -> None:
    client.force_login(world.patient_user)
    assert client.get(reverse("documents:my_consent")).status_code == 404
    signed_consent(world.patient, version=2)
    signed_plan(world.patient, world.prescriber)
    signed_note(world.patient, world.therapist, world.clinic)
    page = client.get(reverse("documents:my")).content.decode()
    assert "My signed consent (version 2)" in page and "My treatment plan" in page
    from kapclinic.documents.records import portal_records

    # notes (and process notes) are never among them: the portal does not show notes
    assert [r["title"] for r in portal_records(world.patient)] == [
        "My signed consent (version 2)",
        "My treatment plan",
    ]
    assert "/records/notes/" not in page
    texts = pages(client.get(reverse("documents:my_consent")))
    assert_every_page_names_the_patient(texts, world.patient)
    assert "Consent version 2" in " ".join(" ".join(texts).split())
    assert "Feel like myself again" in "\n".join(pages(client.get(reverse("documents:my_plan"))))
    assert sorted(exports(world.patient)) == ["pdf consent Letter", "pdf plan Letter"]
    # another patient of the clinic gets their own (none here), never this patient's
    client.force_login(world.other_patient_user)
    assert client.get(reverse("documents:my_consent")).status_code == 404
