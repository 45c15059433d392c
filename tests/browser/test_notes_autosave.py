"""Issue 12: a therapist presses "Sign note" while the draft's autosave is still on its way (a busy
machine, a slow network). The autosave reached the server (the draft's version moved on), its answer
had not reached the page yet. Signing must wait for it and succeed, with all the text; a real change
from another tab is still refused, and the page keeps the author's text."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from kapclinic.audit.models import AuditEvent
from kapclinic.notes import services
from kapclinic.notes.models import Note
from kapclinic.testing.factories import actor_for, make_clinic, make_patient, make_staff

pytestmark = pytest.mark.browser

EMAIL = "theo@autosave.test"


def _draft() -> tuple[Any, Note]:
    clinic = make_clinic("Harbor")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email=EMAIL)
    patient = make_patient(clinic, care_team=[therapist], legal_first_name="Robin")
    return patient, services.note_create(actor_for(therapist, clinic), patient, template_key="soap")


def _texts(note: Note) -> dict[str, str]:
    return {s["key"]: s["text"] for s in Note.objects.get(pk=note.pk).sections}


def _until(page: Any, done: Any, what: str) -> None:
    """Let Playwright run its handlers until `done()` (a route handler has run); fail after 15 s."""
    for _ in range(300):
        if done():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def test_sign_while_the_autosave_is_in_flight_waits_for_it_and_signs(
    page: Any, server: str, login: Any, shot: Any, axe_check: Any
) -> None:
    patient, note = _draft()
    login(page, EMAIL)
    page.goto(f"{server}/notes/patient/{patient.pk}/{note.pk}/edit/")
    held: list[Any] = []

    def hold_first_answer(route: Any) -> None:
        if held:
            route.continue_()
            return
        held.append((route, route.fetch()))  # the server has saved; the page does not know yet

    page.route("**/autosave/", hold_first_answer)
    page.get_by_label("Subjective").fill("Sleeping better; calmer mornings.")
    _until(page, lambda: held, "the autosave")
    assert Note.objects.get(pk=note.pk).version == 2
    assert page.locator("#note-version").input_value() == "1"
    # She adds the plan and signs at once (its own autosave is still waiting for its 1.2 s pause).
    page.get_by_label("Plan").fill("Continue weekly integration sessions.")
    page.get_by_role("button", name="Sign note").click()
    assert not Note.objects.get(pk=note.pk).is_signed  # Sign note waits for the autosave's answer
    shot(page, "notes-autosave-1-sign-waits")
    route, response = held[0]
    with page.expect_navigation():
        route.fulfill(response=response)
    expect(page.get_by_text("Note signed.")).to_be_visible()
    expect(page.get_by_text("Someone else changed")).to_have_count(0)
    stored = Note.objects.get(pk=note.pk)
    assert stored.is_signed
    assert _texts(note)["subjective"] == "Sleeping better; calmer mornings."
    assert _texts(note)["plan"] == "Continue weekly integration sessions."
    # The plan's own autosave was never sent after Sign note (nothing was refused, nothing denied).
    assert not AuditEvent.objects.filter(action="denied").exists()
    axe_check(page, "notes-autosave-signed")
    shot(page, "notes-autosave-2-signed")


def test_a_change_from_another_tab_is_still_refused_and_the_text_stays(
    page: Any, server: str, login: Any, shot: Any
) -> None:
    patient, note = _draft()
    login(page, EMAIL)
    url = f"{server}/notes/patient/{patient.pk}/{note.pk}/edit/"
    page.goto(url)
    other = page.context.new_page()
    other.goto(url)
    other.get_by_label("Plan").fill("Written in the other tab.")
    expect(other.locator("#save-status")).to_contain_text("Draft saved")
    other.close()
    page.get_by_label("Subjective").fill("Written in the first tab.")
    page.get_by_role("button", name="Sign note").click()
    expect(page.locator("#save-status")).to_contain_text("Someone else changed this record")
    assert page.get_by_label("Subjective").input_value() == "Written in the first tab."
    stored = Note.objects.get(pk=note.pk)
    assert not stored.is_signed and _texts(note)["plan"] == "Written in the other tab."
    shot(page, "notes-autosave-3-other-tab-refused")
