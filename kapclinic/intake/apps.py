from __future__ import annotations

from typing import Any

from django.apps import AppConfig


def _pathway_context(request: Any, patient: Any) -> dict[str, Any]:
    from django.urls import reverse

    from kapclinic.consent.selectors import consent_summary
    from kapclinic.core.actor import actor_from_request
    from kapclinic.intake.selectors import eligibility_summary
    from kapclinic.patients.selectors import active_medications
    from kapclinic.policy import Action, can
    from kapclinic.treatment.models import PlanStatus
    from kapclinic.treatment.selectors import readiness_detail, recent_and_signed_plans

    actor = actor_from_request(request)
    # Each fact read once and handed on (issue #7): the assessment comes with the eligibility decision,
    # the medication list is the one the chart shows, and the signed plan comes with the newest plans.
    assessment, eligibility = eligibility_summary(patient, active_medications(patient))
    consent = consent_summary(patient)
    plans, signed = recent_and_signed_plans(patient)
    readiness = readiness_detail(patient, eligibility=eligibility, consent=consent, plan=signed)
    status_labels = dict(PlanStatus.choices)
    return {
        "assessment": assessment,
        "eligibility": eligibility,
        "consent": consent,
        "plans": [
            {
                "url": reverse("treatment:plan", args=[patient.pk, p.pk]),
                "title": p.protocol_title,
                "status": status_labels.get(p.status, p.status),
            }
            for p in plans
        ],
        "ready": readiness.ok,
        "reasons": readiness.reasons,
        "can_prescribe": can(actor, Action.PRESCRIBE, patient),
    }


def _inquiry_widget(request: Any) -> dict[str, Any]:
    from kapclinic.intake.models import Inquiry, InquiryStatus

    qs = Inquiry.objects.filter(clinic=request.clinic, status=InquiryStatus.NEW)
    return {"count": qs.count(), "latest": list(qs.order_by("-created_at")[:5])}


class IntakeConfig(AppConfig):
    name = "kapclinic.intake"
    label = "intake"
    verbose_name = "Intake"

    def ready(self) -> None:
        from kapclinic.accounts.models import Role
        from kapclinic.core.registry import (
            ChartPanel,
            Widget,
            register_chart_panel,
            register_dashboard_widget,
        )

        register_chart_panel(
            ChartPanel(
                key="kap_pathway",
                title="KAP pathway: assessment, eligibility, consent, plan",
                template="intake/_pathway_panel.html",
                context=_pathway_context,
                action="view_clinical",
                order=10,
            )
        )
        register_dashboard_widget(
            Widget(
                key="new_inquiries",
                title="New inquiries",
                template="intake/_inquiry_widget.html",
                context=_inquiry_widget,
                roles=frozenset({Role.FRONT_DESK, Role.ADMIN}),
                order=10,
            )
        )
