"""Demo consent: version 1 of the clinic's consent document, signed by patients in treatment."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from kapclinic.accounts.models import Role
from kapclinic.consent import services
from kapclinic.consent.models import ConsentDocument, SignatureChannel
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.intake.demo import at_time, treatment_start

TITLE = "Consent to ketamine-assisted psychotherapy"
BODY = (Path(__file__).parent / "default_consent.txt").read_text()  # written for this project


def seed(ctx: Any) -> None:
    if ConsentDocument.objects.filter(clinic=ctx.clinic).exists():
        return
    now = clock.now()
    with at_time(now - dt.timedelta(days=200)):
        doc = services.document_publish(ctx.staff_actor("admin"), title=TITLE, body=BODY)
    for patient in ctx.patients:
        if patient.pathway_status not in ("active", "maintenance"):
            continue
        actor = Actor(user=patient.user, clinic=ctx.clinic, role=Role.PATIENT, request_id="seed-demo")
        with at_time(treatment_start(patient, now) + dt.timedelta(days=1)):
            _sign(ctx, actor, patient, doc)


def _sign(ctx: Any, actor: Actor, patient: Any, doc: Any) -> None:
    services.consent_sign(
        actor if patient.user else ctx.staff_actor("frontdesk"),
        patient,
        document_id=doc.pk,
        typed_name=patient.legal_name,
        agreed=True,
        ip="127.0.0.1",
        channel=SignatureChannel.PORTAL if patient.user else SignatureChannel.IN_CLINIC,
    )
