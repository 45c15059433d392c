"""Calendars show each viewer only what kapclinic/policy.py lets them see of the patient.

The rule: a patient's name (and record number, kind of visit, status and session phase) appears on the
day view, week view, chair board, "today" widget and a staff calendar feed only for viewers who may see
that patient (VIEW_DEMOGRAPHICS); everyone else sees a busy block that says "Booked", with no link to the
appointment page (which would answer 403). A therapist sees their caseload; prescribers and nurses the
whole clinic; the front desk and admins every name but no clinical detail (no session state or link).
The booking service refuses a therapist off the care team as clinician (tests in test_booking.py), so
an appointment of a therapist with a patient off their caseload only exists when they left the care
team after the booking: those are written directly here.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import icalendar
import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from kapclinic.patients.services import care_team_add
from kapclinic.scheduling import services, widgets
from kapclinic.scheduling.models import Appointment, Resource
from kapclinic.scheduling.tests.conftest import at
from kapclinic.sessions.models import DosingSession
from kapclinic.testing.factories import actor_for, make_patient

pytestmark = pytest.mark.django_db

VIEWS = ["scheduling:index", "scheduling:week", "scheduling:chairs"]
DAY = "2026-03-02"  # the frozen clock's day (14:00 UTC = 09:00 in the clinic's time zone)


def raw(world: Any, patient: Any, start: dt.datetime, staff: Any, **kw: Any) -> Appointment:
    return Appointment.objects.create(
        clinic=world.clinic,
        patient=patient,
        kind=kw.pop("kind", "integration"),
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=kw.pop("minutes", 60)),
        staff=staff,
        created_by=world.front_desk,
        **kw,
    )


def session(world: Any, appt: Appointment, state: str) -> DosingSession:
    return DosingSession.objects.create(
        clinic=world.clinic,
        patient=appt.patient,
        protocol_id="esketamine-in-trd",
        protocol_version="1.0.0",
        scheduled_for=appt.starts_at,
        appointment=appt,
        state=state,
        created_by=world.prescriber,
    )


@pytest.fixture
def scene(world: Any, clock_frozen: Any, chair: Any, room: Any) -> SimpleNamespace:
    """Today (local times): 10:00 world.therapist with world.patient (on their caseload) in Room A;
    11:00 a dosing session of world.other_patient (world.therapist_other's caseload) in Chair 1, in
    monitoring; 13:00 world.therapist with world.other_patient by video (the therapist left the care
    team after the booking); 14:30 a dosing session of world.patient in Chair 1, nurse, no session yet."""
    s = SimpleNamespace(
        mine=raw(world, world.patient, at(15, day=2), world.therapist, resource=room),
        theirs=raw(
            world,
            world.other_patient,
            at(16, day=2),
            world.therapist_other,
            kind="dosing",
            minutes=120,
            resource=chair,
        ),
        left=raw(world, world.other_patient, at(18, day=2), world.therapist, modality="video"),
        mine_chair=raw(
            world, world.patient, at(19, 30, day=2), world.nurse, kind="dosing", minutes=120, resource=chair
        ),
    )
    s.session = session(world, s.theirs, "monitoring")
    return s


def join_team(world: Any) -> None:
    """The front desk adds world.therapist to world.other_patient's care team (patients app service)."""
    actor = actor_for(world.front_desk, world.clinic)
    care_team_add(actor, world.other_patient, user=world.therapist, role="therapist")


def page(client: Any, name: str) -> str:
    response = client.get(reverse(name), {"date": DAY})
    assert response.status_code == 200
    return str(response.content.decode())


def detail(appt: Appointment) -> str:
    return reverse("scheduling:detail", args=[appt.pk])


BUSY_MARK = {
    "scheduling:index": 'class="cal-block kind-busy"',
    "scheduling:week": 'class="week-item kind-busy"',
    "scheduling:chairs": '<span class="cal-busy">Booked</span>',
}


@pytest.mark.parametrize("name", VIEWS)
def test_therapist_sees_a_busy_block_for_a_patient_off_their_caseload(
    name: str, world: Any, client: Any, scene: Any
) -> None:
    client.force_login(world.therapist)
    body = page(client, name)
    other = world.other_patient
    assert other.display_name not in body and other.legal_first_name not in body
    assert other.mrn not in body
    assert world.patient.display_name in body
    # No link to an appointment page that would answer 403; the own-caseload ones link.
    assert detail(scene.theirs) not in body and detail(scene.left) not in body
    assert detail(scene.mine_chair) in body
    # The clinician's own appointment with a patient off their caseload is a busy block too.
    busy = {"scheduling:index": 2, "scheduling:week": 2, "scheduling:chairs": 1}[name]
    assert body.count(BUSY_MARK[name]) == busy
    # Nothing of the session beyond "Booked": neither its state nor a link into it.
    assert "Monitoring" not in body and "In session" not in body
    assert reverse("sessions:detail", args=[other.pk, scene.session.pk]) not in body
    assert client.get(detail(scene.left)).status_code == 403  # what the missing link would have said


def test_day_view_busy_block_carries_no_kind_or_status(world: Any, client: Any, scene: Any) -> None:
    client.force_login(world.therapist)
    body = page(client, "scheduling:index")
    start = body.index('class="cal-block kind-busy"')
    block = body[start : body.index("</div>", start)]
    assert "Booked" in block
    for detail_word in ("Dosing", "Integration", "Video", "status-"):
        assert detail_word not in block


@pytest.mark.parametrize("name", VIEWS)
def test_on_the_care_team_the_therapist_sees_the_name(name: str, world: Any, client: Any, scene: Any) -> None:
    care_team_add(
        actor_for(world.front_desk, world.clinic), world.other_patient, user=world.therapist, role="therapist"
    )
    client.force_login(world.therapist)
    body = page(client, name)
    assert world.other_patient.display_name in body
    assert BUSY_MARK[name] not in body
    assert detail(scene.theirs) in body
    if name == "scheduling:chairs":
        assert "Monitoring" in body  # a clinician on the team sees the session's state


@pytest.mark.parametrize("name", VIEWS)
def test_front_desk_sees_every_name_but_no_clinical_detail(
    name: str, world: Any, client: Any, scene: Any
) -> None:
    client.force_login(world.front_desk)
    body = page(client, name)
    assert world.other_patient.display_name in body and world.patient.display_name in body
    assert BUSY_MARK[name] not in body
    assert detail(scene.theirs) in body
    assert (detail(scene.left) in body) is (name != "scheduling:chairs")  # not in a chair
    assert "Monitoring" not in body
    assert reverse("sessions:detail", args=[world.other_patient.pk, scene.session.pk]) not in body
    if name == "scheduling:chairs":
        assert "In session" in body  # the chair is in use; not which clinical step


def test_appointment_page_shows_the_front_desk_no_session_state(world: Any, client: Any, scene: Any) -> None:
    client.force_login(world.front_desk)
    body = client.get(detail(scene.theirs)).content.decode()
    assert "Dosing session: In session." in body and "Monitoring" not in body
    client.force_login(world.nurse)
    body = client.get(detail(scene.theirs)).content.decode()
    assert "Monitoring" in body


def test_nurse_sees_every_name_and_the_session_state(world: Any, client: Any, scene: Any) -> None:
    client.force_login(world.nurse)
    body = page(client, "scheduling:chairs")
    assert world.other_patient.display_name in body and "Monitoring" in body
    assert reverse("sessions:detail", args=[world.other_patient.pk, scene.session.pk]) in body


# ---------------------------------------------------------------- the "today" widget on /home/


def today(world: Any, user: Any) -> tuple[dict[str, Any], str]:
    request = RequestFactory().get("/home/")
    request.user = user
    request.clinic = world.clinic  # type: ignore[attr-defined]
    request.role = actor_for(user, world.clinic).role  # type: ignore[attr-defined]
    request.request_id = "t"  # type: ignore[attr-defined]
    ctx = widgets.today_context(request)
    return ctx, render_to_string("scheduling/_today_widget.html", {"ctx": ctx})


def test_today_widget_hides_a_patient_off_the_caseload(world: Any, scene: Any) -> None:
    ctx, html = today(world, world.therapist)
    assert [e.pk for e in ctx["items"]] == [scene.mine.pk, scene.left.pk]  # their own day only
    assert world.patient.display_name in html and detail(scene.mine) in html
    assert world.other_patient.display_name not in html and world.other_patient.mrn not in html
    assert '<span class="cal-busy">Booked</span>' in html and detail(scene.left) not in html
    assert html.count("Integration session") == 1  # the busy one shows no kind
    care_team_add(
        actor_for(world.front_desk, world.clinic), world.other_patient, user=world.therapist, role="therapist"
    )
    _ctx, html = today(world, world.therapist)
    assert world.other_patient.display_name in html and "cal-busy" not in html


def test_today_widget_front_desk_sees_the_clinics_day_by_name(world: Any, scene: Any) -> None:
    ctx, html = today(world, world.front_desk)
    assert len(ctx["items"]) == 4 and "cal-busy" not in html
    assert world.other_patient.display_name in html and world.patient.display_name in html


#: The widget's template before issue #7 (per-row {% url %}, |time and model lookups): the rows the
#: widget now prints must read exactly the same.
_TODAY_BEFORE = (
    '<ul class="plain">{% for e in items %}<li>{% if e.openable %}<a href="{% url \'scheduling:detail\' '
    'e.a.pk %}">{{ e.a.starts_at|time:"H:i" }}</a>{% else %}{{ e.a.starts_at|time:"H:i" }}{% endif %} '
    '{% if e.named %}{{ e.label }} · {{ e.kind }}{% else %}<span class="cal-busy">{{ e.label }}</span>'
    "{% endif %}{% if e.a.resource %} · {{ e.a.resource.name }}{% endif %}{% if not mine_only %} · "
    "{{ e.a.staff.full_name }}{% endif %}</li>{% endfor %}</ul>"
)


@pytest.mark.parametrize("persona", ["therapist", "front_desk", "nurse", "admin"])
def test_today_widget_prints_what_the_calendar_entries_printed(world: Any, scene: Any, persona: str) -> None:
    from django.template import Context, Template

    from kapclinic.core import clock
    from kapclinic.scheduling import selectors

    user = getattr(world, persona)
    ctx, html = today(world, user)
    actor = actor_for(user, world.clinic)
    start, end = selectors.day_bounds(clock.today())
    staff_id = actor.user_id if ctx["mine_only"] else None
    appts = list(selectors.appointments_between(world.clinic, start, end, staff_id=staff_id)[:20])
    seen = selectors.Visibility.of(actor, appts)
    before = Template("{% load static %}" + _TODAY_BEFORE).render(
        Context({"items": [seen.entry(a) for a in appts], "mine_only": ctx["mine_only"]})
    )
    assert appts and html.startswith(before.removesuffix("</ul>"))


def test_chart_panel_lists_the_next_five_booked_appointments(world: Any, client: Any, scene: Any) -> None:
    from django.template import Context, Template

    from kapclinic.scheduling import selectors

    request = RequestFactory().get("/")
    request.user = world.nurse
    request.clinic = world.clinic  # type: ignore[attr-defined]
    request.role = "nurse"  # type: ignore[attr-defined]
    request.request_id = "t"  # type: ignore[attr-defined]
    with CaptureQueriesContext(connection) as queries:
        ctx = widgets.chart_context(request, world.patient)
    assert len(queries.captured_queries) == 1  # the nurse may schedule clinic-wide: no care-team query
    expected = list(selectors.patient_appointments(world.patient, upcoming_only=True)[:5])
    assert [r.pk for r in ctx["upcoming"]] == [a.pk for a in expected] and expected
    before = Template(
        "{% for a in rows %}<li><a href=\"{% url 'scheduling:detail' a.pk %}\">"
        '{{ a.starts_at|date:"D j M H:i" }}</a> {{ a.get_kind_display }} · {{ a.staff.full_name }}</li>'
        "{% endfor %}"
    ).render(Context({"rows": expected}))
    html = render_to_string("scheduling/_chart_panel.html", {"ctx": ctx, "patient": world.patient})
    assert before in html and ctx["can_schedule"]


def test_home_page_widget_for_a_therapist_shows_no_name_off_the_caseload(
    world: Any, client: Any, scene: Any
) -> None:
    client.force_login(world.therapist)
    body = client.get("/home/").content.decode()
    assert world.other_patient.display_name not in body
    assert world.patient.display_name in body


# ---------------------------------------------------------------- staff calendar feed


def feed_events(client: Any, user: Any, world: Any) -> tuple[dict[str, str], str]:
    token = services.feed_reset(actor_for(user, world.clinic))
    response = client.get(reverse("scheduling:feed", args=[token]))
    assert response.status_code == 200
    events = icalendar.Calendar.from_ical(response.content).walk("VEVENT")
    return {str(e["uid"]): str(e["summary"]) for e in events}, response.content.decode()


def uid(world: Any, appt: Appointment) -> str:
    return f"appointment-{appt.pk}@{world.clinic.slug}.kapclinic"


def test_staff_feed_carries_only_what_its_owner_may_see(world: Any, client: Any, scene: Any) -> None:
    summaries, raw_ics = feed_events(client, world.therapist, world)
    assert summaries == {
        uid(world, scene.mine): f"Integration session · {world.patient.mrn}",
        uid(world, scene.left): "Booked",
    }
    assert world.other_patient.mrn not in raw_ics
    assert world.other_patient.legal_first_name not in raw_ics
    # Joining the care team shows the record number (never a name: feeds sync to phones).
    care_team_add(
        actor_for(world.front_desk, world.clinic), world.other_patient, user=world.therapist, role="therapist"
    )
    summaries, raw_ics = feed_events(client, world.therapist, world)
    assert summaries[uid(world, scene.left)] == f"Integration session · {world.other_patient.mrn}"
    assert world.other_patient.legal_first_name not in raw_ics


def test_staff_feed_follows_the_owners_current_role(world: Any, client: Any, scene: Any) -> None:
    """A nurse covers the whole clinic: their feed names the kind and record number of every booking."""
    summaries, _ics = feed_events(client, world.nurse, world)
    assert summaries == {uid(world, scene.mine_chair): f"Dosing session · {world.patient.mrn}"}


# ---------------------------------------------------------------- query counts: 1 and 50 appointments


def grow(world: Any, n: int) -> None:
    """n more of world.therapist's appointments today, every other one with a patient off their caseload
    (as if they had left the care team), in two chairs, every third with a dosing session."""
    chairs = [
        Resource.objects.get_or_create(clinic=world.clinic, name=name, kind="chair")[0]
        for name in ("Chair A", "Chair B")
    ]
    base = at(14, day=2)
    for _ in range(n):
        i = Appointment.objects.count()
        team = [world.therapist] if i % 2 == 0 else [world.therapist_other]
        appt = raw(
            world,
            make_patient(world.clinic, care_team=team),
            base + dt.timedelta(minutes=5 * i),
            world.therapist,
            kind="dosing",
            minutes=5,
            resource=chairs[i % 2],
        )
        if i % 3 == 0:
            session(world, appt, "recovery")


def count(client: Any, url: str) -> int:
    client.get(url)  # warm-up
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("persona", ["therapist", "front_desk", "nurse"])
@pytest.mark.parametrize("name", VIEWS)
def test_calendar_views_run_the_same_queries_for_1_and_50_appointments(
    name: str, persona: str, world: Any, client: Any, clock_frozen: Any
) -> None:
    client.force_login(getattr(world, persona))
    url = f"{reverse(name)}?date={DAY}"
    grow(world, 1)
    one = count(client, url)
    grow(world, 49)
    many = count(client, url)
    assert one == many, f"{name} as {persona}: {one} queries with 1 appointment, {many} with 50"
    assert many <= 24
    body = client.get(url).content.decode()
    if persona == "therapist":
        assert body.count(BUSY_MARK[name]) == 25  # half of the 50 are off the caseload


def test_today_widget_and_feed_run_the_same_queries_for_1_and_50(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    token = services.feed_reset(actor_for(world.therapist, world.clinic))
    feed_url = reverse("scheduling:feed", args=[token])

    def widget_queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            today(world, world.therapist)
        return len(ctx.captured_queries)

    grow(world, 1)
    one = (widget_queries(), count(client, feed_url))
    grow(world, 49)
    many = (widget_queries(), count(client, feed_url))
    assert one == many
    # the test's own role look-up, then the widget's three: the longest-appointment setting, the day's
    # appointments, and which of their patients the therapist may see
    assert many[0] == 4
    _ctx, html = today(world, world.therapist)
    assert html.count('<span class="cal-busy">Booked</span>') == 10  # 20 shown, every other off the caseload


@pytest.mark.parametrize(
    ("persona", "queries"), [("therapist", 1), ("nurse", 1), ("front_desk", 1), ("prescriber", 1)]
)
def test_visibility_asks_the_database_once_per_distinct_scope(
    persona: str, queries: int, world: Any, scene: Any
) -> None:
    """The four answers a chair board needs come from one query when the policy scopes them alike."""
    from kapclinic.scheduling.selectors import Visibility

    actor = actor_for(getattr(world, persona), world.clinic)
    appts = list(Appointment.objects.select_related("patient"))
    with CaptureQueriesContext(connection) as ctx:
        seen = Visibility.of(actor, appts, chair_board=True)
    assert len(ctx.captured_queries) == queries
    both = {world.patient.pk, world.other_patient.pk}
    expected = {
        "therapist": ({world.patient.pk}, {world.patient.pk}, set()),
        "nurse": (both, both, both),
        "front_desk": (both, set(), set()),
        "prescriber": (both, both, both),
    }[persona]
    assert (set(seen.named), set(seen.clinical), set(seen.monitor)) == expected
    assert seen.openable == seen.named
