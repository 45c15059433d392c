"""Issue 15 in the browser: a clinic admin sees and revokes a connected backend service; a patient sees
and removes an app they allowed (docs/fhir-api.md#authorization)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from oauth2_provider.models import AccessToken
from playwright.sync_api import expect

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.fhirapi import clients
from kapclinic.fhirapi.models import ClientKind
from kapclinic.testing.factories import make_clinic, make_patient_user, make_staff


def test_admin_revokes_a_client_and_patient_removes_an_app(
    browser: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    clinic = make_clinic("Harbor")
    make_staff(clinic, "admin", name="Ada Admin", email="admin@fhir.test")
    rx = make_staff(clinic, "prescriber", email="rx@fhir.test")
    user, _patient = make_patient_user(clinic, care_team=[rx], legal_first_name="Robin")
    system = Actor.system(clinic)
    clients.register(system, clinic, name="State registry", scopes="system/*.rs", jwks={"keys": []})
    app = clients.register(system, clinic, name="Mood diary", scopes="launch/patient patient/*.rs",
                           kind=ClientKind.APP, redirect_uris="https://mood.example/cb")  # fmt: skip
    AccessToken.objects.create(
        application=app.application, user=user, token="t-browser", scope="launch/patient patient/*.rs",
        expires=clock.now() + dt.timedelta(hours=1),
    )  # fmt: skip

    login(page, "admin@fhir.test")
    page.get_by_role("link", name="Connected apps").click()
    expect(page.get_by_role("heading", name="Connected apps")).to_be_visible()
    table = page.get_by_role("region", name="Connected apps table")
    expect(table.get_by_role("cell", name="State registry", exact=True)).to_be_visible()
    axe_check(page, "connected apps")
    shot(page, "fhir-connected-apps")
    page.get_by_role("button", name="Revoke State registry").click()
    expect(page.get_by_text("can no longer read this clinic's records")).to_be_visible()
    expect(table.get_by_text("Revoked")).to_be_visible()

    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    ppage = ctx.new_page()
    login(ppage, user.email)
    ppage.get_by_role("link", name="Apps you allowed").click()
    expect(ppage.get_by_role("heading", name="Apps you allowed")).to_be_visible()
    expect(ppage.get_by_role("cell", name="Mood diary", exact=True)).to_be_visible()
    axe_check(ppage, "apps you allowed")
    shot(ppage, "fhir-apps-you-allowed")
    ppage.get_by_role("button", name="Remove access for Mood diary").click()
    expect(ppage.get_by_text("The app can no longer read your record.")).to_be_visible()
    expect(ppage.get_by_text("You have not allowed any app.")).to_be_visible()
    ctx.close()


def test_admin_creates_a_patient_group(
    browser: Any, page: Any, server: str, login: Any, axe_check: Any, shot: Any
) -> None:
    """docs/fhir-api.md#groups: from the connected apps page an admin defines a Group of two patients
    (found with the picker's search), sees it listed with its FHIR id; a bad name is refused first."""
    from kapclinic.fhirapi.models import PatientGroup
    from kapclinic.testing.factories import make_patient

    clinic = make_clinic("Harbor")
    make_staff(clinic, "admin", name="Ada Admin", email="admin@groups.test")
    robin = make_patient(clinic, legal_first_name="Robin", legal_last_name="Ashby")
    sky = make_patient(clinic, legal_first_name="Sky", legal_last_name="Brennan")
    make_patient(clinic, legal_first_name="Lee", legal_last_name="Carver")

    login(page, "admin@groups.test")
    page.get_by_role("link", name="Connected apps").click()
    page.get_by_role("link", name="patient groups").click()
    expect(page.get_by_role("heading", name="Patient groups")).to_be_visible()
    page.get_by_role("link", name="New group").click()
    expect(page.get_by_role("heading", name="New patient group")).to_be_visible()
    axe_check(page, "new patient group")

    page.get_by_label("Find patients").fill("Ash")
    page.get_by_role("button", name="Find").click()
    page.get_by_label(f"Ashby, Robin · {robin.mrn}").check()
    page.get_by_label("Find patients").fill("Bren")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_label(f"Ashby, Robin · {robin.mrn}")).to_be_checked()  # kept while searching
    page.get_by_label(f"Brennan, Sky · {sky.mrn}").check()
    page.get_by_role("button", name="Save group").click()  # no name yet: refused, nothing saved
    expect(page.get_by_text("Give the group a name.")).to_be_visible()
    assert not PatientGroup.objects.exists()
    axe_check(page, "patient group form with an error")
    page.screenshot(path="/tmp/i15grp-group-form-error.png", full_page=True)

    page.get_by_label("Name").fill("Maintenance cohort")
    page.get_by_role("button", name="Save group").click()
    expect(page.get_by_text("Group Maintenance cohort saved with 2 patients.")).to_be_visible()
    group = PatientGroup.objects.get()
    table = page.get_by_role("region", name="Patient groups table")
    row = table.get_by_role("row").filter(has_text="Maintenance cohort")
    expect(row.get_by_role("cell", name=f"ag{group.pk}")).to_be_visible()
    expect(row.get_by_role("cell", name="2", exact=True)).to_be_visible()
    assert set(group.members.values_list("pk", flat=True)) == {robin.pk, sky.pk}
    axe_check(page, "patient groups")
    shot(page, "fhir-patient-groups")
    page.screenshot(path="/tmp/i15grp-groups-list.png", full_page=True)

    # a 360 px phone: neither page scrolls sideways (the list's rows become cards)
    ctx = browser.new_context(viewport={"width": 360, "height": 800}, is_mobile=True, has_touch=True)
    phone = ctx.new_page()
    login(phone, "admin@groups.test")
    for path in ("/fhir/auth/groups/", f"/fhir/auth/groups/{group.pk}/"):
        phone.goto(f"{server}{path}")
        wide = phone.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, (path, wide)
    axe_check(phone, "patient group on a phone")
    phone.screenshot(path="/tmp/i15grp-group-edit-phone.png", full_page=True)
    ctx.close()
