"""Backup codes for two-factor sign-in, clinic note templates edited as versions and retired, and a
therapist editing a process note, driven in the browser with screenshots and axe-core."""

from __future__ import annotations

import re
from typing import Any

from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from kapclinic.notes.models import ProcessNote, ProcessNoteRevision
from kapclinic.testing.factories import make_clinic, make_patient, make_staff


def _verify_with_app(page: Any, device: TOTPDevice) -> None:
    page.get_by_label("6-digit code from your authenticator app").fill(f"{totp(device.bin_key):06d}")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()


def test_backup_codes_are_shown_once_and_sign_a_person_in(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    make_staff(clinic, "prescriber", name="Dr. Priya Prescriber", email="prescriber@mfa.test")
    from kapclinic.accounts.models import User

    device = TOTPDevice.objects.create(
        user=User.objects.get(email="prescriber@mfa.test"), name="Authenticator app", confirmed=True
    )
    login(page, "prescriber@mfa.test")
    expect(page.get_by_role("heading", name="Enter your verification code")).to_be_visible()
    axe_check(page, "mfa-verify")
    _verify_with_app(page, device)

    page.goto(f"{server}/account/backup-codes/")
    with page.expect_navigation():
        page.get_by_role("button", name="Create 10 backup codes").click()
    codes = page.get_by_role("list", name="Backup codes").locator("code").all_inner_texts()
    assert len(codes) == 10 and len(set(codes)) == 10
    axe_check(page, "backup-codes-new")
    shot(page, "security-backup-codes")
    page.reload()
    assert codes[0] not in page.content()  # shown once

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    login(page, "prescriber@mfa.test")
    with page.expect_navigation():
        page.get_by_role("link", name="Use a backup code instead").click()
    page.get_by_label("Backup code").fill("zzzzz-zzzzz")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text(re.compile("not valid or has already been used"))).to_be_visible()
    axe_check(page, "backup-code-refused")
    page.wait_for_timeout(1500)  # django-otp makes the next attempt wait after a wrong code (1 s, doubling)
    page.get_by_label("Backup code").fill(codes[0])
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("link", name="Two-factor sign-in")).to_be_visible()
    shot(page, "security-signed-in-with-backup-code")


def test_note_template_versions_and_process_note_edit(
    page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    therapist = make_staff(clinic, "therapist", name="Theo Therapist", email="therapist@notes.test")
    patient = make_patient(clinic, legal_first_name="Robin", care_team=[therapist])
    login(page, "therapist@notes.test")

    page.goto(f"{server}/notes/templates/")
    page.get_by_label("Title").fill("Couples integration")
    page.get_by_label("Sections, one per line").fill("What surfaced\nWhat each partner heard")
    with page.expect_navigation():
        page.get_by_role("button", name="Add template").click()
    card = page.get_by_role("article", name=re.compile("Couples integration"))
    expect(card).to_contain_text("version 1")
    with page.expect_navigation():
        card.get_by_role("link", name="Edit").click()
    page.get_by_label("Sections, one per line").fill("What surfaced\nWhat each partner heard\nAgreements")
    with page.expect_navigation():
        page.get_by_role("button", name="Save as a new version").click()
    card = page.get_by_role("article", name=re.compile("Couples integration"))
    expect(card).to_contain_text("version 2")
    with page.expect_navigation():
        card.get_by_role("button", name="Retire").click()
    expect(page.get_by_role("article", name=re.compile("Couples integration"))).to_contain_text("Retired")
    axe_check(page, "note-templates")
    shot(page, "notes-templates-versioned")

    page.goto(f"{server}/notes/patient/{patient.pk}/process/")
    page.get_by_role("textbox", name="Process note").fill("Guarded, curious about the music.")
    with page.expect_navigation():
        page.get_by_role("button", name="Save encrypted").click()
    note = ProcessNote.objects.get(patient=patient)
    page.goto(f"{server}/notes/patient/{patient.pk}/process/{note.pk}/edit/")
    page.get_by_role("textbox", name="Process note").fill("Guarded at first, then curious about the music.")
    with page.expect_navigation():
        page.get_by_role("button", name="Save encrypted").click()
    expect(page.get_by_text(re.compile("edited"))).to_be_visible()
    assert ProcessNoteRevision.objects.filter(note=note).count() == 1
    axe_check(page, "process-note-edited")
    shot(page, "notes-process-note-edited")
