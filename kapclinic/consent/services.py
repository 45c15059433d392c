from __future__ import annotations

import hashlib

from django.db import transaction

from kapclinic.audit.services import record_event
from kapclinic.consent.models import ConsentDocument, ConsentSignature, SignatureChannel
from kapclinic.consent.selectors import current_document
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.patients.models import Patient, TimelineCategory
from kapclinic.patients.services import add_timeline_event


def document_publish(actor: Actor, *, title: str, body: str) -> ConsentDocument:
    """Publish the next version of the clinic's consent document. Everyone must re-consent."""
    assert actor.clinic is not None
    with transaction.atomic():
        last = (
            ConsentDocument.objects.select_for_update()
            .filter(clinic=actor.clinic)
            .order_by("-version")
            .first()
        )
        doc = ConsentDocument.objects.create(
            clinic=actor.clinic,
            version=(last.version + 1) if last else 1,
            title=title.strip(),
            body=body.strip(),
            published_by=actor.user,
            published_at=clock.now(),
        )
        record_event(actor, "create", obj=doc, detail=f"consent v{doc.version}")
    return doc


def _norm(name: str) -> str:
    return " ".join(name.split()).casefold()


def consent_sign(
    actor: Actor,
    patient: Patient,
    *,
    document_id: int,
    typed_name: str,
    agreed: bool,
    ip: str | None,
    channel: str = SignatureChannel.PORTAL,
) -> ConsentSignature:
    """Store the patient's signature on exactly the text shown. Refuses a superseded version, a
    missing agreement, or a typed name that does not match the patient's legal name."""
    doc = current_document(patient.clinic_id)
    if doc is None or doc.pk != document_id:
        raise DomainError(
            "The consent document changed while you were reading it. Please read the current version "
            "and sign again."
        )
    if not agreed:
        raise DomainError("Tick the box to confirm that you have read and agree to the consent document.")
    if _norm(typed_name) != _norm(patient.legal_name):
        raise DomainError(
            f"The typed name must match the legal name on the record ({patient.legal_name}); type it exactly."
        )
    text = doc.full_text
    with transaction.atomic():
        sig = ConsentSignature.objects.create(
            patient=patient,
            document=doc,
            signed_text=text,
            text_sha256=hashlib.sha256(text.encode()).hexdigest(),
            typed_name=typed_name.strip(),
            signed_at=clock.now(),
            ip=(ip or "")[:64],
            channel=channel,
            witnessed_by=actor.user if channel == SignatureChannel.IN_CLINIC else None,
        )
        record_event(actor, "sign", patient=patient, obj=sig, detail=f"consent v{doc.version} {channel}")
        add_timeline_event(
            patient,
            kind="consent.signed",
            title=f"Consent signed (version {doc.version})",
            category=TimelineCategory.ADMIN,
            actor=actor,
            ref=sig,
        )
    return sig
