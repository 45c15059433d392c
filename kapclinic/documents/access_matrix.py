"""Who may open each documents URL (see kapclinic/testing/matrix.py).

Administrative documents are demographics (front desk and admins too); clinical documents and every
printable clinical record are clinical data (prescriber, nurse, the therapist on the care team)."""

from __future__ import annotations

from typing import Any

from kapclinic.testing.matrix import Entry, expect, patient_kwargs, patient_scoped, roles

STAFF = ("admin", "prescriber", "therapist", "nurse", "front_desk")
CLIN = ("prescriber", "therapist", "nurse")
PATIENTS = expect(403, patient_user=200, other_patient_user=200)
OWN = expect(403, patient_user=200, other_patient_user=404)  # the other patient has no such record


def _doc(world: Any, category: str, *, portal: bool = False) -> dict[str, Any]:
    from kapclinic.documents.testing import add_document, tiny_pdf
    from kapclinic.testing.factories import actor_for

    user = world.patient_user if portal else world.prescriber
    doc = add_document(
        actor_for(user, world.clinic), world.patient, tiny_pdf(), "scan.pdf", category=category, portal=portal
    )
    return {"patient_id": world.patient.pk, "document_id": doc.pk}


def _admin_doc(world: Any) -> dict[str, Any]:
    return _doc(world, "id_card")


def _clinical_doc(world: Any) -> dict[str, Any]:
    return _doc(world, "lab_result")


def _pending(world: Any) -> dict[str, Any]:
    return _doc(world, "admin_form", portal=True)


def _session(world: Any) -> dict[str, Any]:
    from kapclinic.documents.testing import session_with_monitoring

    s = session_with_monitoring(world.patient, world.prescriber, world.nurse, world.clinic)
    return {"patient_id": world.patient.pk, "session_id": s.pk}


def _signature(world: Any) -> dict[str, Any]:
    from kapclinic.documents.testing import signed_consent

    return {"patient_id": world.patient.pk, "signature_id": signed_consent(world.patient).pk}


def _note(world: Any) -> dict[str, Any]:
    from kapclinic.documents.testing import signed_note

    return {
        "patient_id": world.patient.pk,
        "note_id": signed_note(world.patient, world.therapist, world.clinic).pk,
    }


def _plan(world: Any) -> dict[str, Any]:
    from kapclinic.documents.testing import signed_plan

    return {"patient_id": world.patient.pk, "plan_id": signed_plan(world.patient, world.prescriber).pk}


def _letter(world: Any) -> dict[str, Any]:
    from kapclinic.documents.models import Letter

    letter = Letter.objects.create(
        patient=world.patient, recipient_name="Dr Synthetic", subject="Referral", body="Synthetic letter.",
        author=world.prescriber,
    )  # fmt: skip
    return {"patient_id": world.patient.pk, "letter_id": letter.pk}


def _own_consent(world: Any) -> dict[str, Any]:
    from kapclinic.documents.testing import signed_consent

    signed_consent(world.patient)
    return {}


def _own_plan(world: Any) -> dict[str, Any]:
    from kapclinic.documents.testing import signed_plan

    signed_plan(world.patient, world.prescriber)
    return {}


def _own_scores(world: Any) -> dict[str, Any]:
    from kapclinic.measures.services import response_submit
    from kapclinic.testing.factories import actor_for

    response_submit(
        actor_for(world.nurse, world.clinic), world.patient, instrument="PHQ-9", version=None,
        answers=[1, 1, 1, 1, 0, 0, 0, 0, 0], source="paper", entered_by=world.nurse,
    )  # fmt: skip
    return {}


ALL_STAFF = patient_scoped(STAFF)
CLINICAL = patient_scoped(CLIN)

MATRIX = {
    "documents:queue": Entry(roles(STAFF)),
    "documents:logo": Entry(roles(("admin",)), note="the clinic's logo on its PDFs: clinic setup"),
    "documents:patient": Entry(ALL_STAFF, kwargs=patient_kwargs),
    "documents:detail": Entry(CLINICAL, setup=_clinical_doc, note="a clinical document: not front desk"),
    "documents:download": Entry(ALL_STAFF, setup=_admin_doc, note="an administrative document"),
    "documents:file": Entry(patient_scoped(STAFF, ok=302), method="post", setup=_pending),
    "documents:reject": Entry(patient_scoped(STAFF, ok=302), method="post", setup=_pending),
    "documents:records": Entry(CLINICAL, kwargs=patient_kwargs),
    "documents:session_pdf": Entry(CLINICAL, setup=_session),
    "documents:consent_pdf": Entry(CLINICAL, setup=_signature),
    "documents:note_pdf": Entry(CLINICAL, setup=_note),
    "documents:plan_pdf": Entry(CLINICAL, setup=_plan),
    "documents:measures_pdf": Entry(CLINICAL, kwargs=patient_kwargs),
    "documents:letter_pdf": Entry(CLINICAL, setup=_letter),
    "documents:my": Entry(PATIENTS),
    "documents:my_consent": Entry(OWN, setup=_own_consent),
    "documents:my_plan": Entry(OWN, setup=_own_plan),
    "documents:my_measures": Entry(OWN, setup=_own_scores),
}
