"""Demo billing: the clinic's identifiers, a starter fee schedule, a package, and a few patients'
accounts built from the demo's discharged dosing sessions (charges posted, payments by card and
cheque, one write-off, one package drawn down). Synthetic data only; runs after the sessions demo."""

from __future__ import annotations

from typing import Any

from kapclinic.billing import services
from kapclinic.billing.models import ChargeLine, FeeItem
from kapclinic.billing.testing import npi, starter_fee_schedule
from kapclinic.core.errors import DomainError


def seed(ctx: Any) -> None:
    if FeeItem.objects.filter(clinic=ctx.clinic).exists():
        return
    from kapclinic.sessions.models import DosingSession, SessionState

    admin = ctx.staff_actor("admin")
    desk = ctx.staff_actor("frontdesk")
    services.save_profile(
        admin,
        expected_version=None,
        legal_name=f"{ctx.clinic.name} PLLC",
        organisation_npi=npi("123456789"),
        tax_id="12-3456789",
        billing_address=ctx.clinic.address or "100 Synthetic Avenue\nPortland, OR 97201",
        billing_phone=ctx.clinic.phone,
    )
    providers = (
        ("prescriber", "MD", "MD-204811"),
        ("therapist", "LCSW", "LCSW-55102"),
        ("therapist2", "LPC", "LPC-77310"),
        ("nurse", "RN", "RN-318870"),
    )
    for n, (key, creds, lic) in enumerate(providers):
        services.save_provider(
            admin,
            ctx.staff[key],
            expected_version=None,
            credentials=creds,
            licence_number=lic,
            licence_state="OR",
            npi=npi(f"19876543{n}"),
        )
    starter_fee_schedule(admin)
    package = services.add_package(
        desk,
        name="Esketamine induction: six visits",
        sessions=6,
        price="2400.00",
        appointment_kinds=["dosing"],
    )
    sessions = list(
        DosingSession.objects.filter(clinic=ctx.clinic, state=SessionState.DISCHARGED)
        .select_related("patient")
        .order_by("discharged_at")
    )
    patients: list[Any] = []
    for s in sessions:
        if s.patient not in patients and (s.patient == ctx.demo_patient or len(patients) < 4):
            patients.append(s.patient)
    for i, patient in enumerate(patients):
        if not patient.diagnoses.exists():
            continue
        if i == 1:
            purchase = services.sell_package(desk, patient, package=package)
            services.record_payment(
                desk, patient, method="bank_transfer", amount="2400.00", reference="TRF-DEMO-1"
            )
        for s in (x for x in sessions if x.patient_id == patient.pk):
            try:
                lines = services.propose_for_session(desk, s)
            except DomainError:
                continue
            if any(line.review_note.startswith("Enter the units") for line in lines):
                for line in lines:
                    services.edit_draft(
                        desk,
                        line,
                        expected_version=line.version,
                        units=2,
                        modifiers=line.modifiers,
                        diagnosis_codes=line.diagnosis_codes,
                        pos=line.pos,
                        unit_price=line.unit_price,
                    )
            posted = services.post_charges(desk, patient, line_ids=[x.pk for x in lines])
            if i == 1 and purchase.remaining:
                purchase = services.draw_package(desk, purchase, charges=posted)
        total = sum((c.amount for c in ChargeLine.objects.filter(patient=patient, status="posted")), 0)
        if i in (0, 2) and total:
            services.record_payment(
                desk, patient, method="card", amount=str(total), reference=f"AUTH-{1000 + i}"
            )
        if i == 3:
            open_lines = services.open_charges(patient)
            if open_lines:
                services.record_payment(desk, patient, method="cheque", amount="100.00", reference="CHQ 2041")
                services.adjust(
                    desk, open_lines[0], kind="write_off", amount="25.00", reason="Hardship discount (demo)"
                )
