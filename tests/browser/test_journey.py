"""Issue 4 journey: self-check, inquiry, front desk converts it, the patient completes the intake, the
prescriber reads the eligibility report and signs, the patient e-signs consent, the prescriber signs a
plan and its appointments are proposed. Screenshots and axe-core on every page."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from kapclinic.testing.factories import PASSWORD, make_clinic, make_staff

ALL_NO = "document.querySelectorAll('input[type=radio][value=no]').forEach(r => { r.checked = true; })"


def test_inquiry_to_signed_treatment_plan(
    browser: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    from kapclinic.accounts.models import User
    from kapclinic.consent import services as consent_services
    from kapclinic.core.actor import Actor
    from kapclinic.patients.models import Patient

    clinic = make_clinic(
        "Harbor KAP",
        is_public=True,
        phone="(555) 010-2040",
        address="200 Example Street",
        hours="Mon-Fri 8-18",
    )
    make_staff(clinic, "front_desk", name="Frankie Frontdesk", email="front@j.test")
    prescriber = make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="rx@j.test")
    # A clinic names its on-call prescriber before it enrols anyone (safety alerts always reach someone).
    type(clinic).objects.filter(pk=clinic.pk).update(on_call_prescriber=prescriber)
    consent_services.document_publish(
        Actor(prescriber, clinic, "prescriber"),
        title="Consent to ketamine-assisted psychotherapy",
        body="The treatment, its risks, the alternatives, off-label use, no driving until the next day.",
    )

    def new_page() -> Any:
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        ctx.set_default_timeout(15000)
        return ctx.new_page()

    def check(p: Any, name: str) -> None:
        axe_check(p, name)
        shot(p, f"journey-{name}")

    # 1. The public site and the self-check (anonymous)
    page.goto(f"{server}/")
    assert "(555) 010-2040" in page.content()
    check(page, "01-public-home")
    with page.expect_navigation():
        page.get_by_role("link", name="Is KAP right for me?").first.click()
    for key, value in (("phq9_1", "2"), ("phq9_2", "2"), ("gad7_1", "1"), ("gad7_2", "1"), ("phq9_9", "0")):
        page.locator(f"input[name={key}][value='{value}']").check()
    page.evaluate(ALL_NO)
    page.locator("input[name=prior][value=antidepressant]").check()
    check(page, "02-self-check")
    with page.expect_navigation():
        page.get_by_role("button", name="See my next step").click()
    expect(page.get_by_role("heading", name="Request a consultation")).to_be_visible()

    check(page, "03-self-check-result")

    # 2. The inquiry form
    with page.expect_navigation():
        page.get_by_role("link", name="Request a consultation").first.click()
    page.get_by_label("Your name").fill("Jordan Avery")
    page.locator("#id_email").fill("jordan@example.test")
    page.get_by_label("What are you struggling with?").fill(
        "Depression for two years; two medicines did not help."
    )
    page.get_by_label("I agree that the clinic may contact me").check()
    check(page, "04-inquiry-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("heading", name="Thank you, your message was sent")).to_be_visible()

    check(page, "05-inquiry-sent")

    # 3. The front desk converts the inquiry into a patient record
    fd = new_page()
    login(fd, "front@j.test")
    fd.goto(f"{server}/intake/")
    check(fd, "06-inquiry-queue")
    with fd.expect_navigation():
        fd.get_by_role("link", name="Jordan Avery").click()
    with fd.expect_navigation():
        fd.get_by_role("link", name="Convert to a patient record").click()
    fd.get_by_label("Date of birth").fill("1988-07-14")
    with fd.expect_navigation():
        fd.get_by_role("button", name="Check for existing records and convert").click()
    expect(fd.get_by_role("heading", name="Jordan Avery")).to_be_visible()

    check(fd, "07-chart-after-conversion")
    patient = Patient.objects.get(legal_last_name="Avery")

    # The clinic invites the patient to the portal (account invitation is another feature).
    user = User.objects.create_user(email="jordan@example.test", full_name="Jordan Avery", password=PASSWORD)
    Patient.objects.filter(pk=patient.pk).update(user=user)

    # 4. The patient completes the intake questionnaire in the portal
    pt = new_page()
    login(pt, "jordan@example.test")
    pt.goto(f"{server}/intake/questionnaire/")
    pt.evaluate(ALL_NO)
    check(pt, "08-portal-questionnaire")
    with pt.expect_navigation():
        pt.get_by_role("button", name="Send my answers").click()
    assert "Your answers were sent to your care team" in pt.content()

    # 5. The prescriber completes the assessment and reads the eligibility report
    rx = new_page()
    login(rx, "rx@j.test")
    rx.goto(f"{server}/intake/patients/{patient.pk}/assessment/")
    for qid in ("bp_rise_serious_hazard", "hypertensive_encephalopathy", "delirium_confounder",
                "severe_personality_disorder"):  # fmt: skip
        rx.locator(f"input[name=q_{qid}][value=no]").check()
    rx.get_by_label("Adequate failed antidepressant trials (this episode)").fill("2")
    rx.get_by_label("Current medication list reviewed with the patient").select_option("yes")
    rx.get_by_label("Systolic BP (mmHg)").fill("300")
    rx.get_by_label("Diastolic BP (mmHg)").fill("20")
    rx.get_by_label("Weight (kg)").fill("900")
    with rx.expect_navigation():
        rx.get_by_role("button", name="Save assessment").click()
    assert "Nothing was saved" in rx.content() and "outside the plausible range" in rx.content()
    check(rx, "09-assessment-refused")
    rx.get_by_label("Systolic BP (mmHg)").fill("124")
    rx.get_by_label("Diastolic BP (mmHg)").fill("79")
    rx.get_by_label("Heart rate (/min)").fill("72")
    rx.get_by_label("SpO2 (%)").fill("98")
    rx.get_by_label("Weight (kg)").fill("74")
    rx.get_by_label("Height (cm)").fill("178")
    with rx.expect_navigation():
        rx.get_by_role("button", name="Save assessment").click()
    expect(rx.get_by_role("heading", name="Eligibility report: Jordan Avery")).to_be_visible()

    assert "No exclusion or review finding" in rx.content()
    check(rx, "10-eligibility-report")
    rx.get_by_role("radio", name="Eligible", exact=True).check()
    rx.get_by_label("Reason for this decision").fill(
        "No contraindication; treatment-resistant; goals discussed."
    )
    with rx.expect_navigation():
        rx.get_by_role("button", name="Sign decision").click()
    assert "Eligibility decision signed." in rx.content()
    check(rx, "11-eligibility-signed")

    # 6. The patient e-signs consent in the portal
    pt.goto(f"{server}/consent/sign/")
    pt.get_by_label("I have read this consent document").check()
    pt.get_by_label("Type your full legal name to sign").fill("Jordan Avery")
    check(pt, "12-consent-sign")
    with pt.expect_navigation():
        pt.get_by_role("button", name="Sign consent").click()
    assert "Consent signed." in pt.content()

    # 7. The prescriber drafts and signs the plan; its appointments are proposed
    rx.goto(f"{server}/treatment/patients/{patient.pk}/plans/new/")
    rx.get_by_label("Indication (coded diagnosis)").select_option("F33.1")
    rx.get_by_label("Goals, in the patient's own words").fill(
        "To feel like myself again and go back to work."
    )
    rx.get_by_label("Adjunct psychotherapy").select_option("cbt")
    rx.get_by_label("Protocol (from the protocol library)").select_option("ketamine-iv-racemic@1.1.0")
    check(rx, "13-plan-new")
    with rx.expect_navigation():
        rx.get_by_role("button", name="Create draft plan").click()
    expect(rx.get_by_role("heading", name="Proposed appointments (14)")).to_be_visible()

    with rx.expect_navigation():
        rx.get_by_role("button", name="Sign treatment plan").click()
    assert "Treatment plan signed." in rx.content()
    assert "Ready" in rx.content()
    check(rx, "14-plan-signed")
    rx.goto(f"{server}/patients/{patient.pk}/")
    assert "Treatment plan signed" in rx.content() and "Consent signed" in rx.content()
    check(rx, "15-chart-timeline")
