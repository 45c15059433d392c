from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kapclinic.consent.models import ConsentDocument, ConsentSignature
from kapclinic.patients.models import Patient


def current_document(clinic: Any) -> ConsentDocument | None:
    return ConsentDocument.objects.filter(clinic=clinic).order_by("-version").first()


@dataclass(frozen=True)
class ConsentState:
    document: ConsentDocument | None
    signature: ConsentSignature | None  # latest signature of any version

    @property
    def current(self) -> bool:
        return (
            self.document is not None
            and self.signature is not None
            and self.signature.document_id == self.document.pk
        )

    @property
    def refusal(self) -> str | None:
        if self.document is None:
            return "The clinic has not published a consent document."
        if self.signature is None:
            return "The patient has not signed the consent document."
        if not self.current:
            return (
                f"The patient signed consent version {self.signature.document.version}, but version "
                f"{self.document.version} is now current: the patient must re-consent before the next "
                "dosing session."
            )
        return None


def consent_state(patient: Patient) -> ConsentState:
    doc = current_document(patient.clinic_id)
    sig = (
        ConsentSignature.objects.filter(patient=patient)
        .select_related("document")
        .order_by("-signed_at", "-id")
        .first()
    )
    return ConsentState(doc, sig)


def consent_summary(patient: Patient) -> ConsentState:
    """``consent_state(patient)`` for pages that show only whether consent is current, which version
    and when it was signed (the chart's pathway panel and its readiness line): the same two rows, without
    the document's text or the signed copy of it.

    A patient only ever signs their clinic's current document, and published documents are never
    removed: while the clinic has none, the patient has no signature and it is not looked up."""
    doc = (
        ConsentDocument.objects.filter(clinic_id=patient.clinic_id)
        .only("id", "clinic_id", "version")
        .order_by("-version")
        .first()
    )
    if doc is None:
        return ConsentState(None, None)
    sig = (
        ConsentSignature.objects.filter(patient_id=patient.pk)
        .select_related("document")
        .only("id", "patient_id", "document_id", "signed_at", "document__version")
        .order_by("-signed_at", "-id")
        .first()
    )
    return ConsentState(doc, sig)
