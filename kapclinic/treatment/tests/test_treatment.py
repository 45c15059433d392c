from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.consent import services as consent_services
from kapclinic.core.actor import Actor
from kapclinic.intake import services as intake_services
from kapclinic.intake.models import Assessment
from kapclinic.intake.tests.helpers import complete_assessment
from kapclinic.patients.models import Patient
from kapclinic.treatment.models import PlanStatus, TreatmentPlan
from kapclinic.treatment.planning import propose_series
from kapclinic.treatment.selectors import dosing_readiness

pytestmark = pytest.mark.django_db


def _eligible(world: Any, rationales: dict[str, str] | None = None, **assessment: Any) -> None:
    complete_assessment(world.patient, **assessment)
    intake_services.decision_sign(
        Actor(world.prescriber, world.clinic, "prescriber"),
        world.patient,
        shown_version=Assessment.objects.get(patient=world.patient).version,
        decision="eligible",
        reason="Suitable",
        rationales=rationales or {},
    )


def _plan_post(protocol: str = "ketamine-iv-racemic@1.1.0", **kw: Any) -> dict[str, Any]:
    data = {
        "indication": "F33.1",
        "goals": "To enjoy my garden again",
        "modality": "cbt",
        "modality_other": "",
        "protocol": protocol,
        "dosing_sessions": "",
        "sessions_per_week": "",
        "target_instrument": "PHQ-9",
        "target_comparator": "lt",
        "target_value": "10",
        "target_timepoint": "after the induction series",
    }
    data.update(kw)
    return data


def test_propose_series_pure() -> None:
    series = propose_series(6, Decimal("2"))
    kinds = [p.kind for p in series]
    assert kinds[0] == "preparation" and kinds[-1] == "reassessment"
    assert kinds.count("dosing") == 6 and kinds.count("integration") == 6
    assert all(series[i + 1].kind == "integration" for i, p in enumerate(series) if p.kind == "dosing")
    assert [p.week for p in series if p.kind == "dosing"] == [1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="at least 1"):
        propose_series(0, Decimal("2"))


def test_plan_refused_without_eligibility(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    response = client.post(reverse("treatment:plan_new", args=[world.patient.pk]), _plan_post())
    assert response.status_code == 400
    assert "No eligibility decision has been signed." in response.content.decode()
    assert TreatmentPlan.objects.count() == 0


def test_plan_proposes_appointments_and_sign_makes_patient_ready(client: Any, world: Any) -> None:
    _eligible(world)
    client.force_login(world.prescriber)
    response = client.post(reverse("treatment:plan_new", args=[world.patient.pk]), _plan_post())
    assert response.status_code == 302
    plan = TreatmentPlan.objects.get()
    assert plan.proposals.count() == 1 + 6 * 2 + 1
    assert str(plan.targets.get()) == "PHQ-9 below 10 after the induction series"
    ok, reasons = dosing_readiness(world.patient)
    assert not ok and "There is no signed treatment plan." in reasons
    signed = client.post(
        reverse("treatment:plan_sign", args=[world.patient.pk, plan.pk]), {"version": plan.version}
    )
    assert signed.status_code == 302
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SIGNED and plan.signed_by == world.prescriber
    assert Patient.objects.get(pk=world.patient.pk).pathway_status == "active"
    ok, reasons = dosing_readiness(world.patient)
    assert reasons == ["The clinic has not published a consent document."]
    doc = consent_services.document_publish(
        Actor(world.admin, world.clinic, "admin"), title="Consent", body="Text"
    )
    consent_services.consent_sign(
        Actor(world.patient_user, world.clinic, "patient"),
        world.patient,
        document_id=doc.pk,
        typed_name=world.patient.legal_name,
        agreed=True,
        ip=None,
    )
    assert dosing_readiness(world.patient) == (True, [])


def test_esketamine_plan_refused_for_minor(client: Any, world: Any) -> None:
    Patient.objects.filter(pk=world.patient.pk).update(date_of_birth=dt.date(2010, 1, 1))
    world.patient.refresh_from_db()
    _eligible(world, rationales={"RV-MINOR": "Adolescent service agreement"})
    client.force_login(world.prescriber)
    response = client.post(
        reverse("treatment:plan_new", args=[world.patient.pk]), _plan_post("esketamine-in-trd@1.1.0")
    )
    assert response.status_code == 400
    assert "hard stop (Under 18 (esketamine))" in response.content.decode()


def test_protocol_without_series_length_needs_it(client: Any, world: Any) -> None:
    _eligible(world)
    client.force_login(world.prescriber)
    response = client.post(
        reverse("treatment:plan_new", args=[world.patient.pk]), _plan_post("ketamine-sl-lozenge@1.1.0")
    )
    assert response.status_code == 400
    assert "leaves the series length to the clinic" in response.content.decode()


def test_signing_plan_with_stale_eligibility_is_refused(client: Any, world: Any) -> None:
    _eligible(world)
    client.force_login(world.prescriber)
    client.post(reverse("treatment:plan_new", args=[world.patient.pk]), _plan_post())
    plan = TreatmentPlan.objects.get()
    complete_assessment(world.patient, heart_rate=99)  # intake changes after sign-off
    response = client.post(
        reverse("treatment:plan_sign", args=[world.patient.pk, plan.pk]), {"version": plan.version}
    )
    assert response.status_code == 400
    assert "out of date because the intake changed" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == PlanStatus.DRAFT
    ok, reasons = dosing_readiness(world.patient)
    assert not ok and any("out of date" in r for r in reasons)


def test_esketamine_indication_review_needs_protocol_rationale(client: Any, world: Any) -> None:
    _eligible(world, adequate_failed_trials=1)
    client.force_login(world.prescriber)
    client.post(reverse("treatment:plan_new", args=[world.patient.pk]), _plan_post("esketamine-in-trd@1.1.0"))
    plan = TreatmentPlan.objects.get()
    url = reverse("treatment:plan_sign", args=[world.patient.pk, plan.pk])
    refused = client.post(url, {"version": plan.version})
    assert refused.status_code == 400 and "need your written rationale" in refused.content.decode()
    ok = client.post(
        url, {"version": plan.version, "protocol_rationale": "Acute suicidal ideation indication"}
    )
    assert ok.status_code == 302


def test_protocol_library_pages(client: Any, world: Any) -> None:
    client.force_login(world.nurse)
    assert "IV racemic ketamine" in client.get(reverse("treatment:index")).content.decode()
    assert client.get(reverse("treatment:protocol", args=["ketamine-iv-racemic", "1.0.0"])).status_code == 200
    assert client.get(reverse("treatment:protocol", args=["nope", "1"])).status_code == 404


def test_measure_plan_dimensions(world: Any, django_assert_max_num_queries: Any) -> None:
    from kapclinic.treatment.selectors import measure_plan_dimensions
    from kapclinic.treatment.testing import make_dosing_ready

    assert measure_plan_dimensions(world.patient) == {}
    make_dosing_ready(world.patient, world.prescriber, "ketamine-iv-racemic")
    with django_assert_max_num_queries(1):
        dims = measure_plan_dimensions(world.patient)
    plan = TreatmentPlan.objects.get(patient=world.patient, status=PlanStatus.SIGNED)
    assert dims == {"protocol": plan.protocol_title, "route": "IV", "indication": "F33.1"}
    # a draft plan does not count; the signed one stays the answer
    assert measure_plan_dimensions(world.other_patient) == {}


def test_measures_hook_reads_plan_dimensions(world: Any) -> None:
    from kapclinic.measures import hooks
    from kapclinic.treatment.testing import make_dosing_ready

    make_dosing_ready(world.patient, world.prescriber, "esketamine-in-trd")
    dims = hooks.plan_dimensions(world.patient)
    assert dims["route"] == "IN" and dims["indication"] == "F33.1" and dims["protocol"]


def test_recent_and_signed_plans_match_the_two_plain_reads(
    world: Any, clock_frozen: Any, django_assert_num_queries: Any
) -> None:
    """The chart's one read of the plans answers what the newest-three list and signed_plan() answer:
    with no plan, drafts only, a signed plan among the newest, a signed plan older than three drafts,
    and (should it ever happen) two signed plans."""
    import datetime as dt

    from kapclinic.clinical.protocols import get_protocol
    from kapclinic.clinical.terminology import BY_ICD10
    from kapclinic.treatment import services
    from kapclinic.treatment.selectors import recent_and_signed_plans, signed_plan
    from kapclinic.treatment.testing import sign_eligible, sign_plan

    patient = world.patient

    def draft() -> None:
        clock_frozen.advance(dt.timedelta(minutes=1))
        services.plan_create(
            Actor(world.prescriber, world.clinic, "prescriber"),
            patient,
            protocol=get_protocol("esketamine-in-trd"),
            indication=BY_ICD10["F33.1"],
            goals="Feel like myself again",
            modality="cbt",
            modality_other="",
            dosing_sessions=6,
            sessions_per_week=Decimal(1),
            targets=[],
        )

    def check(queries: int = 1) -> None:
        with django_assert_num_queries(queries):
            recent, signed = recent_and_signed_plans(patient)
        expected = list(TreatmentPlan.objects.filter(patient=patient).order_by("-created_at")[:3])
        assert [p.pk for p in recent] == [p.pk for p in expected]
        assert [p.status for p in recent] == [p.status for p in expected]
        plan = signed_plan(patient)
        assert (signed and signed.pk) == (plan and plan.pk)
        if signed is not None and plan is not None:
            assert (str(signed.signed_by), signed.signed_at) == (str(plan.signed_by), plan.signed_at)

    check()
    sign_eligible(patient, world.prescriber)
    draft()
    check()
    clock_frozen.advance(dt.timedelta(minutes=1))
    sign_plan(patient, world.prescriber)
    check()
    for _ in range(4):
        draft()
        check()
    oldest_draft = TreatmentPlan.objects.filter(patient=patient, status=PlanStatus.DRAFT).earliest(
        "created_at"
    )
    TreatmentPlan.objects.filter(pk=oldest_draft.pk).update(status=PlanStatus.SIGNED)
    check(queries=3)
