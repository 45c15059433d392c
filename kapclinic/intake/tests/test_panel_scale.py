"""Issue #7: the chart's pathway panel computes eligibility and consent state once, same output."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from kapclinic.intake.apps import _pathway_context
from kapclinic.intake.testing import complete_assessment
from kapclinic.treatment.selectors import dosing_readiness

pytestmark = pytest.mark.django_db


def _request(world: Any) -> Any:
    request: Any = RequestFactory().get("/")
    request.user = world.prescriber
    request.clinic = world.clinic
    request.role = "prescriber"
    request.request_id = "t"
    return request


@pytest.mark.parametrize(("ready", "queries"), [(False, 5), (True, 6)])
def test_pathway_panel_runs_no_query_twice(world: Any, ready: bool, queries: int) -> None:
    """Not ready (no consent document yet): medications, decision, assessment, consent document,
    plans. Ready: medications, decision with its assessment, consent document, signature, plans, and
    the clinic's settings for the signed plan's protocol (issue 18: a plan on a protocol missing a
    value the medical director must set is not ready)."""
    if ready:
        from kapclinic.treatment.testing import make_dosing_ready

        make_dosing_ready(world.patient, world.prescriber)
    else:
        complete_assessment(world.patient)
    with CaptureQueriesContext(connection) as ctx:
        data = _pathway_context(_request(world), world.patient)
        list(data["plans"])
    repeats = [sql for sql, n in Counter(q["sql"] for q in ctx.captured_queries).items() if n > 1]
    assert repeats == []
    assert len(ctx.captured_queries) == queries
    assert (data["ready"], data["reasons"]) == dosing_readiness(world.patient)
    assert data["ready"] is ready


def test_pathway_summary_matches_the_full_reads(world: Any, clock_frozen: Any) -> None:
    """eligibility_summary and consent_summary answer what eligibility_state and consent_state answer,
    through every stage: nothing, an assessment, a decision, a medication that makes it stale, consent
    signed and then superseded by a new version."""
    from kapclinic.consent.selectors import consent_state, consent_summary
    from kapclinic.intake.models import Assessment
    from kapclinic.intake.selectors import eligibility_state, eligibility_summary
    from kapclinic.patients import services as patient_services
    from kapclinic.patients.selectors import active_medications
    from kapclinic.testing.factories import actor_for
    from kapclinic.treatment.testing import publish_consent, sign_consent, sign_eligible

    patient = world.patient

    def check() -> None:
        assessment, summary = eligibility_summary(patient, active_medications(patient))
        full = eligibility_state(patient)
        assert (summary.decision and summary.decision.pk, summary.stale) == (
            full.decision and full.decision.pk,
            full.stale,
        )
        assert (summary.current_eligible, summary.refusal) == (full.current_eligible, full.refusal)
        expected = Assessment.objects.filter(patient=patient).first()
        assert (assessment and assessment.pk) == (expected and expected.pk)
        if assessment is not None and expected is not None:
            for field in ("patient_submitted_at", "clinician_completed_at", "updated_at", "version"):
                assert getattr(assessment, field) == getattr(expected, field)
        c_summary, c_full = consent_summary(patient), consent_state(patient)
        assert (c_summary.current, c_summary.refusal) == (c_full.current, c_full.refusal)
        assert (c_summary.document and c_summary.document.version) == (
            c_full.document and c_full.document.version
        )

    check()
    complete_assessment(patient)
    check()
    sign_eligible(patient, world.prescriber)
    check()
    publish_consent(world.clinic)
    check()
    sign_consent(patient, witness=world.prescriber)
    check()
    patient_services.medication_add(
        actor_for(world.prescriber, world.clinic), patient, name="Phenelzine", dose="15 mg", drug_class="maoi"
    )
    check()
    assert eligibility_state(patient).stale
    publish_consent(world.clinic, title="Consent v2")
    check()
    assert not consent_summary(patient).current
