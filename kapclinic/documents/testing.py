"""Synthetic files and records for the documents tests, the access matrix and the demo (no real data)."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any


def tiny_pdf(text: str = "Synthetic document") -> bytes:
    """A one-page PDF holding `text` (drawn by pypdf: no outside tool, no real data)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    font = DictionaryObject(
        {NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
         NameObject("/BaseFont"): NameObject("/Helvetica")}
    )  # fmt: skip
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    safe = text.replace("\\", "").replace("(", "").replace(")", "")
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 100 Td ({safe}) Tj ET".encode("latin-1", "replace"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tiny_png(size: tuple[int, int] = (40, 24), colour: tuple[int, int, int] = (31, 95, 139)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def tiny_jpeg(size: tuple[int, int] = (40, 24)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 180, 90)).save(out, format="JPEG")
    return out.getvalue()


def add_document(actor: Any, patient: Any, data: bytes, name: str, *, category: str, title: str = "",
                 portal: bool = False, note: str = "") -> Any:  # fmt: skip
    from kapclinic.documents import services

    upload = services.Upload(io.BytesIO(data), name, len(data))
    if portal:
        return services.portal_upload(actor, patient, upload=upload, category=category, note=note)
    return services.upload(actor, patient, upload=upload, category=category, title=title)


def signed_consent(patient: Any, *, version: int = 1) -> Any:
    from kapclinic.consent.models import ConsentDocument, ConsentSignature, SignatureChannel
    from kapclinic.core import clock

    doc = ConsentDocument.objects.filter(clinic=patient.clinic, version=version).first()
    if doc is None:
        doc = ConsentDocument.objects.create(
            clinic=patient.clinic, version=version, title="Consent to ketamine-assisted psychotherapy",
            body="I understand the risks described to me. (Synthetic consent text.)",
        )  # fmt: skip
    import hashlib

    return ConsentSignature.objects.create(
        patient=patient, document=doc, signed_text=doc.full_text,
        text_sha256=hashlib.sha256(doc.full_text.encode()).hexdigest(), typed_name=patient.legal_name,
        signed_at=clock.now(), ip="127.0.0.1", channel=SignatureChannel.PORTAL,
    )  # fmt: skip


def signed_plan(patient: Any, prescriber: Any) -> Any:
    from kapclinic.core import clock
    from kapclinic.treatment.models import PlanStatus, TreatmentPlan

    return TreatmentPlan.objects.create(
        patient=patient, status=PlanStatus.SIGNED, indication_icd10="F33.1",
        indication_text="Major depressive disorder, recurrent, moderate", goals="Feel like myself again",
        modality="cbt", protocol_id="ketamine-iv-racemic", protocol_version="1.0.0",
        protocol_title="Racemic ketamine IV infusion", dosing_sessions=6, sessions_per_week=Decimal(2),
        created_by=prescriber, signed_by=prescriber, signed_at=clock.now(),
    )  # fmt: skip


def signed_note(patient: Any, author: Any, clinic: Any, *, addendum: str = "") -> Any:
    from kapclinic.notes import services
    from kapclinic.testing.factories import actor_for

    actor = actor_for(author, clinic)
    note = services.note_create(actor, patient, template_key="soap")
    texts = {s["key"]: f"Synthetic {s['label'].lower()} text." for s in note.sections}
    note = services.note_sign(actor, note, expected_version=note.version, texts=texts)
    if addendum:
        services.addendum_add(actor, note, text=addendum)
    return note


def session_with_monitoring(patient: Any, prescriber: Any, nurse: Any, clinic: Any, *,
                            protocol_id: str = "esketamine-in-trd") -> Any:  # fmt: skip
    """A discharged session with a dose, two sets of vitals, ratings and an adverse event."""
    from kapclinic.clinical.vitals import Reading
    from kapclinic.core import clock
    from kapclinic.sessions import services
    from kapclinic.sessions.models import Administration, DosingSession, ObservationKind
    from kapclinic.testing.factories import actor_for

    now = clock.now()
    s = DosingSession.objects.create(
        clinic=clinic, patient=patient, protocol_id=protocol_id, protocol_version="1.0.0",
        scheduled_for=now - dt.timedelta(minutes=60), created_by=prescriber, state="dosing",
        checked_in_at=now - dt.timedelta(minutes=60), predose_passed_at=now - dt.timedelta(minutes=30),
        first_dose_at=now - dt.timedelta(minutes=5), escort_name="Sam Escort", rems_enrolled=True,
    )  # fmt: skip
    Administration.objects.create(
        session=s, product="Esketamine nasal spray", route="IN", dose_mg=Decimal("56"), devices=2,
        ordered_by=prescriber, ordered_at=now - dt.timedelta(minutes=20), double_checked_by=nurse,
        double_checked_at=now - dt.timedelta(minutes=15), administered_by=nurse,
        administered_at=now - dt.timedelta(minutes=5), lot_number="LOT-SYN-1",
    )  # fmt: skip
    actor = actor_for(nurse, clinic)
    services.vitals_record(actor, s, Reading(sbp=128, dbp=80, hr=72, rr=14, spo2=98))
    services.rating_record(actor, s, kind=ObservationKind.SEDATION, value=5)
    services.adverse_event_record(
        actor, s, description="Transient nausea", onset_at=now, severity="mild",
        action_taken="Reassurance", outcome="resolved",
    )  # fmt: skip
    DosingSession.objects.filter(pk=s.pk).update(
        state="discharged", discharged_at=now + dt.timedelta(minutes=120), discharged_by=prescriber,
        escort_present=True, no_driving_advice_given=True,
    )  # fmt: skip
    return DosingSession.objects.get(pk=s.pk)
