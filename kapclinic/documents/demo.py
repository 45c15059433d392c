"""Demo chart documents and a letter (synthetic: tiny PDFs and PNGs drawn in code, no real data).

The demo patient has an insurance card (administrative) and outside lab results (clinical) filed by
staff, and an outside record sent from the portal waiting in "Uploads to file"; a few other patients
have an ID card. The prescriber has written one summary letter. The demo clinic has a logo (drawn in
code), so its PDFs show where a clinic's own logo prints."""

from __future__ import annotations

from typing import Any

from kapclinic.accounts.models import Role
from kapclinic.core.actor import Actor
from kapclinic.documents.models import Document, Letter
from kapclinic.documents.testing import add_document, tiny_pdf, tiny_png


def demo_logo() -> bytes:
    """A synthetic logo: a circle and a wave, in the application's colours."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (360, 120), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse((12, 12, 108, 108), fill=(31, 95, 139))
    draw.arc((30, 40, 90, 100), start=200, end=340, fill=(255, 255, 255), width=8)
    draw.rectangle((130, 52, 340, 68), fill=(31, 95, 139))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def _seed_logo(ctx: Any) -> None:
    import io

    from kapclinic.documents.logo import logo_set
    from kapclinic.documents.models import ClinicLogo
    from kapclinic.documents.services import Upload

    if ClinicLogo.objects.filter(clinic=ctx.clinic).exists():
        return
    data = demo_logo()
    logo_set(ctx.staff_actor("admin"), Upload(io.BytesIO(data), "clinic-logo.png", len(data)))


def seed(ctx: Any) -> None:
    demo = ctx.demo_patient
    _seed_logo(ctx)
    if Document.objects.filter(patient__clinic=ctx.clinic).exists():
        return
    desk = ctx.staff_actor("frontdesk")
    prescriber = ctx.staff_actor("prescriber")
    add_document(
        desk, demo, tiny_png(), "insurance-card.png", category="id_card", title="Insurance card (front)"
    )
    add_document(
        prescriber, demo, tiny_pdf("Synthetic lab results: liver panel within normal limits"),
        "outside-labs.pdf", category="lab_result", title="Liver panel from an outside lab",
    )  # fmt: skip
    if demo.user is not None:
        me = Actor(user=demo.user, clinic=ctx.clinic, role=Role.PATIENT, request_id="seed-demo")
        add_document(
            me, demo, tiny_pdf("Synthetic discharge summary from a previous hospital stay"),
            "hospital-summary.pdf", category="outside_record", portal=True,
            note="From my stay at the county hospital last year.",
        )  # fmt: skip
    for patient in ctx.patients[:4]:
        if patient.pk != demo.pk:
            add_document(
                desk,
                patient,
                tiny_png(colour=(120, 120, 120)),
                "id-card.png",
                category="id_card",
                title="ID card",
            )
    Letter.objects.get_or_create(
        patient=demo,
        subject="Summary of ketamine-assisted psychotherapy",
        defaults={
            "kind": Letter.Kind.SUMMARY,
            "recipient_name": "Dr. Jordan Synthetic",
            "recipient_organisation": "Riverside Family Medicine",
            "body": "Dear Dr. Synthetic,\n\nThank you for referring this patient. A summary of the course "
            "so far follows below. (Synthetic demo letter.)",
            "author": ctx.staff["prescriber"],
        },
    )
