from typing import Any

from kapclinic.testing.matrix import Entry, expect, patient_kwargs, patient_scoped, roles


def _document(world: Any) -> dict[str, Any]:
    from django.db.models import Max

    from kapclinic.consent.models import ConsentDocument

    # The next version: the fuzz test runs setups again on one world, and a version is unique per clinic.
    last = ConsentDocument.objects.filter(clinic=world.clinic).aggregate(v=Max("version"))["v"]
    version = (last or 0) + 1
    doc = ConsentDocument.objects.create(clinic=world.clinic, version=version, title="Consent", body="Text.")
    return {"document_id": doc.pk}


MATRIX = {
    "consent:index": Entry(roles(("admin", "prescriber"))),
    "consent:document_new": Entry(roles(("admin", "prescriber"))),
    "consent:document": Entry(roles(("admin", "prescriber"), other_clinic_staff=404), setup=_document),
    "consent:sign": Entry(expect(403, patient_user=200, other_patient_user=200)),
    "consent:patient": Entry(
        patient_scoped(("admin", "prescriber", "therapist", "nurse", "front_desk"), other_patient_user=403),
        kwargs=patient_kwargs,
    ),
    "consent:sign_in_clinic": Entry(
        patient_scoped(("admin", "prescriber", "therapist", "front_desk"), other_patient_user=403),
        kwargs=patient_kwargs,
    ),
    "consent:kiosk_start": Entry(
        patient_scoped(("admin", "prescriber", "therapist", "front_desk"), ok=302, other_patient_user=403),
        kwargs=patient_kwargs,
        method="post",
    ),
    # Without a kiosk in progress both lead back to the dashboard (anonymous: to sign-in).
    "consent:kiosk": Entry(expect(302)),
    "consent:kiosk_exit": Entry(expect(302), method="post"),
}
