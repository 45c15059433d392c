"""Browser steps several journeys share."""

from __future__ import annotations

from typing import Any


def check_in_esketamine(page: Any, *, systolic: str, diastolic: str, heart_rate: str) -> None:
    """On an open session page: check the patient in, record the pre-dose details for an esketamine
    session and the baseline vitals."""
    page.get_by_role("button", name="Check patient in").click()
    page.get_by_label("Weight today (kg)").fill("70")
    page.get_by_label("Last food").fill("2026-03-02T06:00")
    page.get_by_label("Last liquids").fill("2026-03-02T08:00")
    page.get_by_label("Escort / driver home").fill("Sam Escort")
    page.get_by_label("Medication changes since the last session reviewed").check()
    page.get_by_label("Pregnancy status").select_option("not_applicable")
    page.get_by_label("Intention for the session").fill("Meet what arises with curiosity")
    page.get_by_label("Patient enrolled in the Spravato REMS").check()
    page.get_by_label("Nasal corticosteroid / decongestant today").select_option("none")
    page.get_by_role("button", name="Save details").click()
    page.get_by_label("Systolic BP (mmHg)").fill(systolic)
    page.get_by_label("Diastolic BP (mmHg)").fill(diastolic)
    page.get_by_label("Heart rate (/min)").fill(heart_rate)
    page.get_by_label("SpO2 (%)").fill("98")
    page.get_by_label("Respiratory rate (/min)").fill("14")
    page.get_by_role("button", name="Save baseline vitals").click()
