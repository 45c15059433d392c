from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.intake import services
from kapclinic.intake.models import Assessment, EligibilityDecision, Inquiry, InquiryStatus
from kapclinic.intake.selectors import eligibility_state, medications_digest
from kapclinic.intake.tests.helpers import assessment_post, complete_assessment
from kapclinic.patients.models import Medication, Patient, TimelineEvent
from kapclinic.testing.factories import make_patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_clinic(world: Any) -> Any:
    world.clinic.is_public = True
    world.clinic.save(update_fields=["is_public"])
    return world.clinic


def _inquiry_data(token: str = "tok-1", **kw: Any) -> dict[str, Any]:
    data = {
        "name": "Sam Rivera",
        "email": "sam@example.test",
        "phone": "",
        "preferred_contact_time": "morning",
        "message": "Low mood for a long time.",
        "consent_to_contact": "on",
        "website": "",
        "token": token,
    }
    data.update(kw)
    return data


# --- public inquiry form -------------------------------------------------------------------------


def test_inquiry_lands_in_queue_once_even_when_submitted_twice(client: Any, public_clinic: Any) -> None:
    url = reverse("public:inquiry")
    assert client.get(url).status_code == 200
    first = client.post(url, _inquiry_data())
    second = client.post(url, _inquiry_data())
    assert first.status_code == second.status_code == 302
    assert Inquiry.objects.filter(clinic=public_clinic).count() == 1
    sent = client.get(reverse("public:inquiry_sent"))
    assert "does not start treatment" in sent.content.decode()


def test_honeypot_stores_nothing_but_looks_the_same(client: Any, public_clinic: Any) -> None:
    response = client.post(reverse("public:inquiry"), _inquiry_data(website="http://spam.example"))
    assert response.status_code == 302 and response["Location"] == reverse("public:inquiry_sent")
    assert Inquiry.objects.count() == 0


def test_rate_limit_per_address(client: Any, public_clinic: Any) -> None:
    url = reverse("public:inquiry")
    for i in range(services.RATE_LIMIT_COUNT):
        assert client.post(url, _inquiry_data(token=f"t{i}")).status_code == 302
    blocked = client.post(url, _inquiry_data(token="t-last"))
    assert blocked.status_code == 429
    assert "several messages from your connection" in blocked.content.decode()
    assert Inquiry.objects.count() == services.RATE_LIMIT_COUNT
    # another address is not affected
    assert client.post(url, _inquiry_data(token="other"), REMOTE_ADDR="10.9.9.9").status_code == 302


def test_inquiry_needs_a_way_to_reply_and_consent(client: Any, public_clinic: Any) -> None:
    response = client.post(reverse("public:inquiry"), _inquiry_data(email="", consent_to_contact=""))
    body = response.content.decode()
    assert response.status_code == 400
    assert "Give an email address or a phone number so that we can reply." in body
    assert "Please tick the box so that we may contact you" in body
    assert Inquiry.objects.count() == 0


# --- queue and conversion ------------------------------------------------------------------------


def _make_inquiry(clinic: Any, name: str = "Sam Rivera", token: str = "a", **kw: Any) -> Inquiry:
    return Inquiry.objects.create(
        clinic=clinic,
        name=name,
        email=kw.pop("email", "sam@example.test"),
        submission_token=token,
        client_key="k",
        consent_to_contact=True,
        **kw,
    )


def test_queue_query_count_is_constant(client: Any, world: Any, django_assert_max_num_queries: Any) -> None:
    client.force_login(world.front_desk)
    _make_inquiry(world.clinic)
    with django_assert_max_num_queries(22):
        assert client.get(reverse("intake:index")).status_code == 200
    for i in range(30):
        _make_inquiry(world.clinic, token=f"x{i}")
    with django_assert_max_num_queries(22):
        response = client.get(reverse("intake:index"))
    assert response.status_code == 200 and "Page 1 of 2" in response.content.decode()


def test_convert_creates_patient_and_second_inquiry_is_merged_by_a_human(client: Any, world: Any) -> None:
    client.force_login(world.front_desk)
    first = _make_inquiry(world.clinic, token="one")
    post = {
        "legal_first_name": "Sam",
        "legal_last_name": "Rivera",
        "date_of_birth": "1990-05-06",
        "email": "sam@example.test",
        "phone": "",
        "match": "",
    }
    response = client.post(reverse("intake:convert", args=[first.pk]), post)
    assert response.status_code == 302
    patient = Patient.objects.get(legal_last_name="Rivera")
    first.refresh_from_db()
    assert first.status == InquiryStatus.CONVERTED and first.patient == patient
    assert Assessment.objects.filter(patient=patient).exists()
    assert TimelineEvent.objects.filter(patient=patient, kind="intake.inquiry_converted").exists()

    second = _make_inquiry(world.clinic, name="Sam Rivera", token="two", email="other@example.test")
    shown = client.post(reverse("intake:convert", args=[second.pk]), {**post, "email": "other@example.test"})
    assert shown.status_code == 200
    assert "is this the same person?" in shown.content.decode()
    assert Patient.objects.filter(legal_last_name="Rivera").count() == 1  # nothing created yet
    merged = client.post(
        reverse("intake:convert", args=[second.pk]),
        {**post, "email": "other@example.test", "match": str(patient.pk)},
    )
    assert merged.status_code == 302
    assert Patient.objects.filter(legal_last_name="Rivera").count() == 1
    second.refresh_from_db()
    assert second.patient == patient and second.status == InquiryStatus.CONVERTED


def test_convert_with_phone_match_and_explicit_new_record(client: Any, world: Any) -> None:
    make_patient(
        world.clinic,
        legal_first_name="Alex",
        legal_last_name="Kim",
        date_of_birth=dt.date(1980, 1, 2),
        phone="(555) 010-1234",
    )
    inquiry = _make_inquiry(world.clinic, name="A. Kim", token="p", phone="555 010 1234")
    client.force_login(world.front_desk)
    post = {
        "legal_first_name": "Alexandra",
        "legal_last_name": "Kimball",
        "date_of_birth": "1980-01-02",
        "email": "",
        "phone": "555 010 1234",
        "match": "",
    }
    assert (
        "is this the same person?"
        in client.post(reverse("intake:convert", args=[inquiry.pk]), post).content.decode()
    )
    created = client.post(reverse("intake:convert", args=[inquiry.pk]), {**post, "match": "new"})
    assert created.status_code == 302
    assert Patient.objects.filter(legal_last_name="Kimball").count() == 1


def test_convert_refuses_future_birth_date(client: Any, world: Any) -> None:
    inquiry = _make_inquiry(world.clinic, token="f")
    client.force_login(world.front_desk)
    response = client.post(
        reverse("intake:convert", args=[inquiry.pk]),
        {
            "legal_first_name": "S",
            "legal_last_name": "R",
            "date_of_birth": "2999-01-01",
            "email": "",
            "phone": "",
        },
    )
    assert response.status_code == 400
    assert "Date of birth cannot be in the future." in response.content.decode()
    assert Patient.objects.filter(legal_last_name="R").count() == 0


# --- portal questionnaire ------------------------------------------------------------------------


def test_patient_questionnaire_fills_checklist_and_shows_crisis_for_intent(client: Any, world: Any) -> None:
    from kapclinic.clinical.eligibility import load_rule_set

    Assessment.objects.create(patient=world.patient)
    client.force_login(world.patient_user)
    url = reverse("intake:questionnaire")
    assert client.get(url).status_code == 200
    data: dict[str, Any] = {"version": 1, "notes": ""}
    for q in load_rule_set().questions:
        if q.asked_of == "patient":
            data[f"q_{q.id}"] = "no"
    data["q_suicidal_intent_or_plan"] = "yes"
    data["q_pregnant"] = "unknown"
    assert client.post(url, data).status_code == 302
    a = Assessment.objects.get(patient=world.patient)
    assert a.answers["aneurysmal_vascular_disease"] == "no" and a.answers["pregnant"] == "unknown"
    assert a.patient_submitted_at is not None and a.version == 2
    page = client.get(url).content.decode()
    assert "Please reach out for help now" in page
    assert "988 Suicide &amp; Crisis Lifeline (call or text 988)" in page


def test_questionnaire_requires_every_answer(client: Any, world: Any) -> None:
    Assessment.objects.create(patient=world.patient)
    client.force_login(world.patient_user)
    response = client.post(reverse("intake:questionnaire"), {"version": 1})
    assert response.status_code == 400
    assert "Please choose Yes, No or Not sure." in response.content.decode()
    assert Assessment.objects.get(patient=world.patient).version == 1


# --- clinician assessment ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weight_kg": "900"}, "Weight of 900 kg is outside the plausible range"),
        ({"weight_kg": "0"}, "Weight of 0 kg is outside the plausible range"),
        (
            {"systolic_bp": "300", "diastolic_bp": "20"},
            "Systolic BP of 300 mmHg is outside the plausible range",
        ),
        (
            {"systolic_bp": "130", "diastolic_bp": ""},
            "Blood pressure needs both systolic and diastolic values.",
        ),
    ],
)
def test_impossible_values_are_refused_and_nothing_saved(
    client: Any, world: Any, overrides: dict[str, str], message: str
) -> None:
    complete_assessment(world.patient)
    before = Assessment.objects.get(patient=world.patient)
    client.force_login(world.prescriber)
    response = client.post(
        reverse("intake:assessment", args=[world.patient.pk]), assessment_post(world.patient, **overrides)
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    after = Assessment.objects.get(patient=world.patient)
    assert after.version == before.version and after.weight_kg == before.weight_kg


def test_assessment_save_and_medication_class_suggestion(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.nurse)
    data = assessment_post(
        world.patient, **{"med-0-name": "Lorazepam", "med-0-dose": "1 mg", "med-0-drug_class": ""}
    )
    before = AuditEvent.objects.count()
    response = client.post(reverse("intake:assessment", args=[world.patient.pk]), data)
    assert response.status_code == 302
    assert AuditEvent.objects.count() == before + 1  # exactly one audit event for the request
    # the medication went on the chart's list (one list), with the chart class suggested from the name
    med = Medication.objects.get(patient=world.patient)
    assert (med.name, med.dose, med.drug_class, med.active) == ("Lorazepam", "1 mg", "benzodiazepine", True)
    assert TimelineEvent.objects.filter(patient=world.patient, kind="medication.added").exists()
    report = client.get(reverse("intake:eligibility", args=[world.patient.pk])).content.decode()
    assert "Current benzodiazepine" in report and "Current medication: Lorazepam (Benzodiazepine)" in report


def test_interaction_flags_read_the_chart_medication_list(client: Any, world: Any) -> None:
    """A medication added on the chart (patients app) is seen by the eligibility report; a coarse chart
    class can be refined in the assessment; an MAOI recorded as 'antidepressant' is still flagged."""
    from kapclinic.patients.services import medication_add

    complete_assessment(world.patient)
    actor = Actor(world.prescriber, world.clinic, "prescriber")
    medication_add(actor, world.patient, name="Phenelzine", dose="15 mg", drug_class="antidepressant")
    rif = medication_add(actor, world.patient, name="Rifampicin", dose="600 mg", drug_class="other")
    client.force_login(world.prescriber)
    report = client.get(reverse("intake:eligibility", args=[world.patient.pk])).content.decode()
    assert "Current MAOI" in report and "Current medication: Phenelzine" in report
    assert "CYP2B6" not in report.split("Medication interaction flags")[1].split("</section>")[0]
    page = client.get(reverse("intake:assessment", args=[world.patient.pk])).content.decode()
    assert "suggested from the name" in page and "Interaction class of Rifampicin" in page
    data = assessment_post(world.patient, **{f"ic-cls_{rif.pk}": "cyp_modulator"})
    phen = Medication.objects.get(name="Phenelzine")
    data[f"ic-cls_{phen.pk}"] = "maoi"  # unchanged from the suggestion: not stored
    assert client.post(reverse("intake:assessment", args=[world.patient.pk]), data).status_code == 302
    a = Assessment.objects.get(patient=world.patient)
    assert a.medication_classes == {str(rif.pk): "cyp_modulator"}
    report = client.get(reverse("intake:eligibility", args=[world.patient.pk])).content.decode()
    assert "CYP2B6 / CYP3A4 inducer or inhibitor" in report


def test_chart_medication_change_makes_decision_stale_only_when_rules_see_it(world: Any) -> None:
    from kapclinic.intake.selectors import eligibility_state
    from kapclinic.patients.services import medication_add, medication_stop

    complete_assessment(world.patient)
    actor = Actor(world.prescriber, world.clinic, "prescriber")
    services.decision_sign(
        actor,
        world.patient,
        shown_version=Assessment.objects.get(patient=world.patient).version,
        decision="eligible",
        reason="Suitable",
        rationales={},
    )
    assert eligibility_state(world.patient).current_eligible
    medication_add(actor, world.patient, name="Vitamin D", dose="", drug_class="other")
    medication_add(actor, world.patient, name="Sertraline", dose="100 mg", drug_class="antidepressant")
    assert eligibility_state(world.patient).current_eligible  # severity "info": rules unchanged
    benzo = medication_add(actor, world.patient, name="Lorazepam", dose="1 mg", drug_class="benzodiazepine")
    state = eligibility_state(world.patient)
    assert state.stale and "current medication the rules see" in (state.refusal or "")
    medication_stop(actor, world.patient, med=benzo)
    assert eligibility_state(world.patient).current_eligible


def test_signing_refused_when_chart_medications_changed_since_shown(world: Any) -> None:
    from kapclinic.patients.services import medication_add

    complete_assessment(world.patient)
    actor = Actor(world.prescriber, world.clinic, "prescriber")
    shown = medications_digest(Assessment.objects.get(patient=world.patient), world.patient)
    medication_add(actor, world.patient, name="Tramadol", dose="50 mg", drug_class="opioid")
    with pytest.raises(DomainError, match="medication list changed after you opened"):
        services.decision_sign(
            actor,
            world.patient,
            shown_version=Assessment.objects.get(patient=world.patient).version,
            decision="eligible",
            reason="Suitable",
            rationales={"RV-MED-OPIOID": "Low dose, monitored"},
            shown_medications_digest=shown,
        )


def test_conflicting_assessment_save_is_refused(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    stale = assessment_post(world.patient)
    complete_assessment(world.patient, heart_rate=80)  # someone else saved
    response = client.post(reverse("intake:assessment", args=[world.patient.pk]), stale)
    assert response.status_code == 409
    assert "Someone else changed this record" in response.content.decode()


# --- eligibility report and signing --------------------------------------------------------------


def _sign(client: Any, patient: Any, **data: Any) -> Any:
    version = Assessment.objects.get(patient=patient).version
    return client.post(reverse("intake:eligibility", args=[patient.pk]), {"version": version, **data})


def test_hard_stop_cannot_be_signed_eligible(client: Any, world: Any) -> None:
    complete_assessment(world.patient, answers={"intracerebral_hemorrhage": "yes"})
    client.force_login(world.prescriber)
    page = client.get(reverse("intake:eligibility", args=[world.patient.pk])).content.decode()
    assert (
        "Hard stop" in page and "History of intracerebral haemorrhage: yes" in page and "[S3][S10b]" in page
    )
    response = _sign(client, world.patient, decision="eligible", reason="benefit")
    assert response.status_code == 400
    assert "cannot be &#x27;eligible&#x27; because a hard stop fired" in response.content.decode()
    assert EligibilityDecision.objects.count() == 0
    assert (
        _sign(client, world.patient, decision="refer_elsewhere", reason="neurology first").status_code == 302
    )
    d = EligibilityDecision.objects.get()
    assert d.rule_set_version == "1.0" and d.report_status == "hard_stop" and len(d.rule_set_digest) == 64


def test_unanswered_question_blocks_eligible(client: Any, world: Any) -> None:
    a = complete_assessment(world.patient)
    a.answers.pop("bp_rise_serious_hazard")
    a.save()
    client.force_login(world.prescriber)
    response = _sign(client, world.patient, decision="eligible", reason="ok")
    assert response.status_code == 400
    assert "while a hard-stop question is unanswered" in response.content.decode()


def test_review_needs_rationale_then_signs(client: Any, world: Any) -> None:
    complete_assessment(world.patient, answers={"psychosis_family_history": "yes"})
    client.force_login(world.prescriber)
    refused = _sign(client, world.patient, decision="eligible", reason="ok")
    assert refused.status_code == 400 and "rationale for review item" in refused.content.decode()
    ok = _sign(
        client,
        world.patient,
        decision="eligible",
        reason="ok",
        **{"rationale_RV-PSYCHOSIS-RISK": "Uncle, distant; monitored"},
    )
    assert ok.status_code == 302
    d = EligibilityDecision.objects.get()
    assert d.review_rationales == {"RV-PSYCHOSIS-RISK": "Uncle, distant; monitored"}
    assert TimelineEvent.objects.filter(patient=world.patient, kind="intake.decision_signed").exists()
    assert AuditEvent.objects.filter(action="sign", patient=world.patient).count() == 1


def test_therapist_cannot_sign(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.therapist)
    assert _sign(client, world.patient, decision="eligible", reason="x").status_code == 403


def test_intake_change_after_sign_off_makes_decision_stale(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    assert _sign(client, world.patient, decision="eligible", reason="clear").status_code == 302
    assert eligibility_state(world.patient).current_eligible
    client.force_login(world.nurse)
    client.post(
        reverse("intake:assessment", args=[world.patient.pk]), assessment_post(world.patient, heart_rate="88")
    )
    state = eligibility_state(world.patient)
    assert state.stale and not state.current_eligible
    assert "out of date" in (state.refusal or "")
    assert TimelineEvent.objects.filter(patient=world.patient, kind="intake.decision_stale").exists()
    client.force_login(world.prescriber)
    page = client.get(reverse("intake:eligibility", args=[world.patient.pk])).content.decode()
    assert "The signed decision is out of date." in page
    assert _sign(client, world.patient, decision="eligible", reason="re-reviewed").status_code == 302
    assert eligibility_state(world.patient).current_eligible


def test_signing_a_report_that_changed_meanwhile_is_refused(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    shown = Assessment.objects.get(patient=world.patient).version
    complete_assessment(world.patient, heart_rate=95)  # the intake changes while the prescriber reads
    response = client.post(
        reverse("intake:eligibility", args=[world.patient.pk]),
        {"version": shown, "decision": "eligible", "reason": "ok"},
    )
    assert response.status_code == 409
    assert "The intake changed after you opened this report" in response.content.decode()
    assert EligibilityDecision.objects.count() == 0


def test_birth_date_change_makes_decision_stale(world: Any) -> None:
    from kapclinic.core.actor import Actor

    complete_assessment(world.patient)
    actor = Actor(world.prescriber, world.clinic, "prescriber")
    services.decision_sign(
        actor,
        world.patient,
        shown_version=Assessment.objects.get(patient=world.patient).version,
        decision="eligible",
        reason="ok",
        rationales={},
    )
    Patient.objects.filter(pk=world.patient.pk).update(date_of_birth=dt.date(2012, 1, 1))
    assert eligibility_state(Patient.objects.get(pk=world.patient.pk)).stale


def test_signed_decision_is_immutable(world: Any) -> None:
    from kapclinic.core.actor import Actor

    complete_assessment(world.patient)
    actor = Actor(world.prescriber, world.clinic, "prescriber")
    d = services.decision_sign(
        actor,
        world.patient,
        shown_version=Assessment.objects.get(patient=world.patient).version,
        decision="not_eligible",
        reason="no",
        rationales={},
    )
    d.reason = "changed"
    with pytest.raises(ValueError, match="cannot be changed"):
        d.save()


def test_eligibility_page_shows_protocol_specific_hard_stop_for_minor(client: Any, world: Any) -> None:
    Patient.objects.filter(pk=world.patient.pk).update(date_of_birth=dt.date(2010, 6, 1))
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    page = client.get(reverse("intake:eligibility", args=[world.patient.pk])).content.decode()
    assert "Under 18 (esketamine)" in page


def test_chart_shows_pathway_panel(client: Any, world: Any) -> None:
    complete_assessment(world.patient)
    client.force_login(world.prescriber)
    page = client.get(reverse("patients:chart", args=[world.patient.pk])).content.decode()
    assert "KAP pathway" in page and "Ready to dose" in page
