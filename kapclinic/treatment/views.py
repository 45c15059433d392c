from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.clinical.protocols import UnknownProtocol, all_protocols, get_protocol, protocol_choices
from kapclinic.core.actor import actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.intake import selectors as intake_selectors
from kapclinic.policy import ON_READ, Action, ClinicAction, can, open_patient, require_clinic
from kapclinic.treatment import selectors, services
from kapclinic.treatment.forms import PlanForm, SignPlanForm
from kapclinic.treatment.models import PlanStatus, ProposedAppointment, TreatmentPlan


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """The protocol library."""
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    return render(request, "treatment/index.html", {"protocols": all_protocols()})


@login_required
def protocol(request: HttpRequest, protocol_id: str, version: str) -> HttpResponse:
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    try:
        p = get_protocol(protocol_id, version)
    except UnknownProtocol:
        raise Http404 from None
    clinic_id = request.clinic.pk  # type: ignore[attr-defined]
    d = selectors.clinic_protocol(clinic_id, p.id, p.version).dose
    ceiling = (
        f"{d.ceiling_mg_per_kg.value}" if d.ceiling_mg_per_kg.value is not None
        else f"{d.ceiling_mg.value}" if d.ceiling_mg.value is not None
        else "set by the medical director"
    )  # fmt: skip
    return render(
        request,
        "treatment/protocol.html",
        {
            "protocol": p,
            "basis": "mg per kg of body weight" if p.dose.basis == "mg_per_kg" else "fixed dose in mg",
            "ceiling": ceiling,
            "unusable": _unusable(clinic_id, [(p.id, p.version)]),
        },
    )


@login_required
def plan_new(request: HttpRequest, patient_id: int) -> HttpResponse:
    posting = request.method == "POST"
    patient = open_patient(
        request,
        patient_id,
        Action.PRESCRIBE,
        audit=ON_READ,
        object_type="treatment_plan_form",
    )
    actor = actor_from_request(request)
    state = intake_selectors.eligibility_state(patient)
    form = PlanForm(request.POST or None)
    status = 200
    if posting:
        if form.is_valid():
            d = form.cleaned_data
            try:
                plan = services.plan_create(
                    actor,
                    patient,
                    protocol=d["protocol_obj"],
                    indication=d["indication_code"],
                    goals=d["goals"],
                    modality=d["modality"],
                    modality_other=d.get("modality_other", ""),
                    dosing_sessions=int(d["dosing_count"]),
                    sessions_per_week=d["spw"],
                    targets=[
                        {
                            "instrument": d["target_instrument"],
                            "comparator": d["target_comparator"],
                            "value": d["target_value"],
                            "timepoint": d["target_timepoint"],
                        }
                    ],
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                messages.success(
                    request, "Treatment plan drafted with its proposed appointments. Review and sign it."
                )
                return redirect("treatment:plan", patient_id=patient.pk, plan_id=plan.pk)
        else:
            status = 400
        record_event(actor, "view", patient=patient, object_type="treatment_plan_form")
    choices = [tuple(key.split("@")) for key, _title in protocol_choices()]
    return render(
        request,
        "treatment/plan_new.html",
        {"patient": patient, "form": form, "state": state, "unusable": _unusable(patient.clinic_id, choices)},
        status=status,
    )


def _unusable(clinic_id: int, keys: list[tuple[str, ...]]) -> list[dict[str, object]]:
    """Protocols among ``keys`` the clinic cannot use yet: title, the values the medical director must
    set, and the settings page that sets them."""
    from kapclinic.clinical.protocols import field_label
    from kapclinic.sessions.services import settings_url

    out: list[dict[str, object]] = []
    for pid, version in keys:
        try:
            p = selectors.clinic_protocol(clinic_id, pid, version)
        except UnknownProtocol:
            continue
        gaps = p.usability_gaps()
        if gaps:
            out.append(
                {"title": p.title, "missing": [field_label(k) for k in gaps], "url": settings_url(p.id)}
            )
    return out


def _plan(patient_id: int, plan_id: int, patient: object) -> TreatmentPlan:
    return get_object_or_404(
        TreatmentPlan.objects.select_related("created_by", "signed_by", "patient"),
        pk=plan_id,
        patient=patient,
    )


@login_required
def plan(request: HttpRequest, patient_id: int, plan_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.VIEW_CLINICAL, object_type="treatment_plan")
    actor = actor_from_request(request)
    item = _plan(patient_id, plan_id, patient)
    return _render_plan(
        request,
        patient,
        item,
        SignPlanForm(initial={"version": item.version}),
        can(actor, Action.PRESCRIBE, patient),
    )


#: Appointment statuses that fulfil a proposed appointment (scheduling's booked and completed).
_FULFILLING = ("booked", "completed")


def _proposals_with_bookings(item: TreatmentPlan) -> list[ProposedAppointment]:
    """The plan's proposed appointments, each with ``booking``: the scheduling appointment booked for it
    (Appointment.proposal), or None. Two queries."""
    proposals = list(item.proposals.prefetch_related("appointments__staff"))
    for p in proposals:
        mine = sorted((a for a in p.appointments.all() if a.status in _FULFILLING), key=lambda a: a.starts_at)
        p.booking = mine[0] if mine else None  # type: ignore[attr-defined]
    return proposals


def _render_plan(
    request: HttpRequest,
    patient: object,
    item: TreatmentPlan,
    form: SignPlanForm,
    can_sign: bool,
    status: int = 200,
) -> HttpResponse:
    protocol = selectors.plan_protocol(item)
    extra = (
        services.extra_review_items(item.patient, protocol)
        if protocol and item.status == PlanStatus.DRAFT
        else []
    )
    ready, reasons = selectors.dosing_readiness(item.patient)
    proposals = _proposals_with_bookings(item)
    return render(
        request,
        "treatment/plan.html",
        {
            "patient": patient,
            "plan": item,
            "protocol": protocol,
            "form": form,
            "can_sign": can_sign,
            "extra_reviews": extra,
            "state": intake_selectors.eligibility_state(item.patient),
            "ready": ready,
            "reasons": reasons,
            "proposals": proposals,
            "open_count": len([p for p in proposals if getattr(p, "booking", None) is None]),
            "can_book": item.status == PlanStatus.SIGNED
            and can(actor_from_request(request), Action.SCHEDULE, item.patient),
            "targets": item.targets.all(),
            "unusable": _unusable(item.patient.clinic_id, [(item.protocol_id, item.protocol_version)]),
        },
        status=status,
    )


@login_required
@require_POST
def plan_sign(request: HttpRequest, patient_id: int, plan_id: int) -> HttpResponse:
    patient = open_patient(request, patient_id, Action.PRESCRIBE, audit=None, object_type="treatment_plan")
    actor = actor_from_request(request)
    item = _plan(patient_id, plan_id, patient)
    form = SignPlanForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            services.plan_sign(
                actor,
                item,
                expected_version=form.cleaned_data["version"],
                protocol_rationale=form.cleaned_data["protocol_rationale"],
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        except ConflictError as exc:
            form.add_error(None, str(exc))
            status = 409
        else:
            messages.success(request, "Treatment plan signed. Its appointments are proposed for booking.")
            return redirect("treatment:plan", patient_id=patient.pk, plan_id=item.pk)
    record_event(actor, "view", patient=patient, obj=item)
    item.refresh_from_db()
    return _render_plan(request, patient, item, form, True, status=status)
