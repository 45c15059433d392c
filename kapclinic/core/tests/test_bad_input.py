"""Issue 12: bad input never reaches a 500 — each reproduced finding, the plausible-date windows, rows
stored outside them, bidi controls, a medication stopped twice and a questionnaire submitted twice."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from kapclinic.core import dates
from kapclinic.core.forms import strip_bidi

NOW = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


def _login(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


# ---------------------------------------------------------------- the reproduced 500s


def test_care_team_remove_with_a_word_is_400(world: Any, client: Any) -> None:
    _login(client, world.admin)
    url = reverse("patients:care_team", kwargs={"patient_id": world.patient.pk})
    response = client.post(url, {"remove": "abc"})
    assert response.status_code == 400
    assert "care team member parameter is not valid" in response.content.decode()


def test_self_check_with_a_superscript_digit_is_refused(db: Any, client: Any) -> None:
    response = client.post(reverse("public:self_check"), {"phq9_1": "²"})
    assert response.status_code == 400


def test_audit_log_page_position_must_be_a_number(world: Any, client: Any) -> None:
    _login(client, world.admin)
    assert client.get(reverse("audit:log"), {"before": "²"}).status_code == 400
    assert client.get(reverse("audit:log"), {"date_to": "9999-12-31"}).status_code == 200  # field error


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("scheduling:index", {"date": "0001-01-01"}),
        ("scheduling:chairs", {"date": "9999-12-31"}),
        ("scheduling:week", {"date": "9999-12-31"}),
        ("scheduling:index", {"staff": "9223372036854775808"}),
        ("scheduling:index", {"resource": "-1"}),
        ("scheduling:new", {"patient": "²"}),
    ],
)
def test_calendar_parameters_out_of_range_are_400(
    world: Any, client: Any, clock_frozen: Any, name: str, query: dict[str, str]
) -> None:
    _login(client, world.prescriber)
    response = client.get(reverse(name), query)
    assert response.status_code == 400
    assert "parameter is not valid" in response.content.decode()


def test_booking_at_the_end_of_time_is_refused_naming_the_date(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    _login(client, world.prescriber)
    response = client.post(
        reverse("scheduling:new"),
        {
            "patient": world.patient.pk,
            "kind": "preparation",
            "date": "9999-12-31",
            "time": "23:00",
            "staff": world.prescriber.pk,
            "modality": "in_person",
        },
    )
    assert response.status_code == 400
    assert "The date must be between 2 March 2025 and 2 March 2028" in response.content.decode()


# ---------------------------------------------------------------- plausible windows


def test_windows() -> None:
    today = dt.date(2026, 3, 2)
    assert dates.schedule_window(today) == (dt.date(2025, 3, 2), dt.date(2028, 3, 2))
    assert dates.birth_window(today) == (dt.date(1906, 3, 2), today)
    assert dates.add_years(dt.date(2024, 2, 29), 1) == dt.date(2025, 2, 28)


@pytest.mark.parametrize("when", ["9999-12-31T23:00", "0001-01-01T00:00", "2024-01-01T09:00"])
def test_dosing_session_outside_the_window_is_refused(
    world: Any, client: Any, clock_frozen: Any, when: str
) -> None:
    from kapclinic.sessions.models import DosingSession

    _login(client, world.nurse)
    url = reverse("sessions:new", kwargs={"patient_id": world.patient.pk})
    response = client.post(url, {"protocol": "esketamine-in-trd@1.0.0", "scheduled_for": when})
    assert response.status_code == 400
    assert "Scheduled for must be between" in response.content.decode()
    assert not DosingSession.objects.filter(patient=world.patient).exists()


@pytest.mark.parametrize(
    ("day", "message"),
    [
        ("1900-01-01", "cannot be before the patient&#x27;s date of birth"),
        ("9999-12-31", "cannot be in the future"),
        ("2026-03-03", "cannot be in the future"),
    ],
)
def test_note_service_date_outside_the_window_is_refused(
    world: Any, client: Any, clock_frozen: Any, day: str, message: str
) -> None:
    from kapclinic.notes.models import Note

    _login(client, world.prescriber)
    url = reverse("notes:new", kwargs={"patient_id": world.patient.pk})
    page = client.get(url)
    template = page.context["form"].fields["template"].choices[0][0]
    response = client.post(url, {"template": template, "service_date": day})
    assert response.status_code == 400
    assert "The date of the visit " + message in response.content.decode()
    assert not Note.objects.filter(patient=world.patient).exists()


@pytest.mark.parametrize(("dob", "ok"), [("1906-03-02", True), ("1906-03-01", False), ("2026-03-03", False)])
def test_birth_date_window(clock_frozen: Any, dob: str, ok: bool) -> None:
    from django.core.exceptions import ValidationError

    try:
        dates.check_birth_date("Date of birth", dt.date.fromisoformat(dob))
    except ValidationError:
        assert not ok
    else:
        assert ok


# ---------------------------------------------------------------- rows stored outside the window


@pytest.mark.parametrize(
    "when",
    [dt.datetime(9999, 12, 30, 12, 0, tzinfo=dt.UTC), dt.datetime(1, 1, 2, 12, 0, tzinfo=dt.UTC)],
)
def test_pages_survive_a_row_stored_outside_the_window(
    world: Any, client: Any, clock_frozen: Any, when: dt.datetime
) -> None:
    """A dosing session and an appointment stored at an impossible time (bypassing the forms) are shown
    and flagged; the lists, the chart and the session page still answer."""
    from kapclinic.scheduling.models import Appointment
    from kapclinic.sessions.models import DosingSession

    session = DosingSession.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=when,
        created_by=world.prescriber,
    )
    appt = Appointment.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        kind="preparation",
        starts_at=when,
        ends_at=when + dt.timedelta(minutes=1),
        staff=world.prescriber,
        created_by=world.prescriber,
    )
    _login(client, world.prescriber)
    pages = [
        reverse("sessions:index"),
        reverse("sessions:detail", kwargs={"patient_id": world.patient.pk, "session_id": session.pk}),
        reverse("patients:chart", kwargs={"patient_id": world.patient.pk}),
        reverse("scheduling:patient", kwargs={"patient_id": world.patient.pk}),
        reverse("scheduling:detail", kwargs={"appointment_id": appt.pk}),
        reverse("scheduling:index"),
        reverse("core:home"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
    detail = client.get(pages[1]).content.decode()
    assert "outside the plausible window" in detail


# ---------------------------------------------------------------- bidi controls


def test_strip_bidi() -> None:
    assert strip_bidi("\u202eabc\u2066d\u2069\u202a") == "abcd"
    assert strip_bidi("Zoë \u200f") == "Zoë \u200f"  # marks are not controls


def test_bidi_controls_are_stripped_from_medication_allergy_and_consent_titles(
    world: Any, client: Any
) -> None:
    from kapclinic.consent.models import ConsentDocument
    from kapclinic.patients.models import Allergy, Medication

    _login(client, world.prescriber)
    kw = {"patient_id": world.patient.pk}
    client.post(
        reverse("patients:add_medication", kwargs=kw),
        {"name": "\u202eSertraline", "dose": "50 mg", "drug_class": "other"},
    )
    client.post(
        reverse("patients:add_allergy", kwargs=kw), {"substance": "Pen\u2066icillin", "reaction": "rash"}
    )
    meds = Medication.objects.filter(patient=world.patient)
    assert list(meds.values_list("name", flat=True)) == ["Sertraline"]
    allergies = Allergy.objects.filter(patient=world.patient)
    assert list(allergies.values_list("substance", flat=True)) == ["Penicillin"]
    _login(client, world.admin)
    client.post(reverse("consent:document_new"), {"title": "\u202eConsent", "body": "Text of the consent."})
    titles = list(ConsentDocument.objects.values_list("title", flat=True))
    assert titles and all("\u202e" not in t for t in titles)


def test_a_title_of_only_bidi_controls_is_required(world: Any, client: Any) -> None:
    from kapclinic.patients.models import Allergy

    _login(client, world.prescriber)
    kw = {"patient_id": world.patient.pk}
    client.post(reverse("patients:add_allergy", kwargs=kw), {"substance": "\u202e\u202e", "reaction": ""})
    assert not Allergy.objects.filter(patient=world.patient).exists()


# ---------------------------------------------------------------- a medication stopped twice


def test_stopping_a_medication_twice_adds_one_timeline_event(world: Any, client: Any) -> None:
    from kapclinic.patients.models import Medication, TimelineEvent

    med = Medication.objects.create(
        patient=world.patient, name="Sertraline", dose="50 mg", recorded_by=world.prescriber
    )
    _login(client, world.prescriber)
    kw = {"patient_id": world.patient.pk, "medication_id": med.pk}
    url = reverse("patients:stop_medication", kwargs=kw)
    client.post(url)
    second = client.post(url, follow=True)
    assert "was already stopped; nothing was changed" in second.content.decode()
    assert TimelineEvent.objects.filter(patient=world.patient, kind="medication.stopped").count() == 1


# ---------------------------------------------------------------- a questionnaire submitted many times


def _phq9_post(client: Any) -> tuple[str, dict[str, str]]:
    url = reverse("measures:my_take", kwargs={"instrument": "PHQ-9"})
    form = client.get(url).context["form"]
    data = {f"item_{n}": "1" for n in range(1, 10)}
    data["item_9"] = "0"
    data["submission"] = form.initial["submission"]
    return url, data


def test_a_questionnaire_posted_again_stores_one_response(world: Any, client: Any) -> None:
    from kapclinic.measures.models import InstrumentResponse

    _login(client, world.patient_user)
    url, data = _phq9_post(client)
    first = client.post(url, data)
    again = [client.post(url, data) for _ in range(15)]
    assert InstrumentResponse.objects.filter(patient=world.patient).count() == 1
    assert {r["Location"] for r in again} == {first["Location"]}  # the saved result is shown again
    _, fresh = _phq9_post(client)  # a new form instance is a new response
    client.post(url, fresh)
    assert InstrumentResponse.objects.filter(patient=world.patient).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_questionnaire_posted_at_once_from_threads_stores_one_response(world: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises writes)")
    from django.test import Client

    from kapclinic.measures.models import InstrumentResponse

    client = Client()
    _login(client, world.patient_user)
    url, data = _phq9_post(client)
    statuses: list[int] = []
    start = threading.Barrier(6)

    def post() -> None:
        c = Client()
        c.force_login(world.patient_user)
        start.wait()
        try:
            statuses.append(c.post(url, data).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [302] * 6
    assert InstrumentResponse.objects.filter(patient=world.patient).count() == 1
