"""Issue #7: the trajectory page's change table is bounded (baseline + the most recent rows, the full history
one link away, paginated); the chart still plots every point; the portal, chart panel and dashboard read
only what they show, in a number of queries that does not grow with the history."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.db import connection
from django.template import engines
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.measures import selectors, services
from kapclinic.measures.models import InstrumentResponse, OutcomeConfig, SafetyAlert
from kapclinic.measures.tests.test_measures import PHQ_MILD_ITEM9, phq, submit
from kapclinic.measures.views import PAGE_SIZE
from kapclinic.testing.factories import make_patient

RECENT = selectors.RECENT_ROWS
DAY = dt.timedelta(days=1)


def _history(world: Any, totals: list[int], *, patient: Any = None, **kw: Any) -> list[Any]:
    """One PHQ-9 a week ending yesterday, oldest first (the first is the baseline)."""
    start = clock.now() - dt.timedelta(days=7 * len(totals))
    return [
        submit(world, phq(t), patient=patient, completed_at=start + dt.timedelta(days=7 * i), **kw)
        for i, t in enumerate(totals)
    ]


def _day(response: Any) -> str:
    from django.utils import formats, timezone

    return formats.date_format(timezone.localtime(response.completed_at), "M j, Y")


def _body_rows(html: str, key: str = "PHQ-9") -> list[str]:
    """The <tr> rows of the instrument's change table, whitespace squeezed."""
    table = html.split(f'id="inst-{key}"')[1] if f'id="inst-{key}"' in html else html
    body = table.split("<tbody>")[1].split("</tbody>")[0]
    return [re.sub(r"\s+", " ", row).strip() for row in body.split("<tr")[1:]]


def _page(client: Any, world: Any, patient: Any = None) -> str:
    url = reverse("measures:patient", kwargs={"patient_id": (patient or world.patient).pk})
    return str(client.get(url).content.decode())


# ---------------------------------------------------------------- the bounded change table


@pytest.mark.django_db
def test_worked_example_baseline_plus_twelve_most_recent(world: Any, client: Any, clock_frozen: Any) -> None:
    """21 weekly PHQ-9s: the table shows the baseline (20), a row saying 8 are left out with a link to
    the full history, then the 12 most recent, oldest first; the chart still has all 21 points."""
    totals = [20, 18, 17, 16, 15, 14, 13, 12, 11, 9, 10, 8, 12, 7, 6, 9, 5, 4, 11, 3, 2]
    responses = _history(world, totals)
    client.force_login(world.prescriber)
    html = _page(client, world)
    rows = _body_rows(html)
    assert len(rows) == 1 + 1 + RECENT
    assert _day(responses[0]) in rows[0] and "Baseline" in rows[0]
    history = reverse("measures:history", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"})
    assert rows[1].startswith('class="gap"') and f'href="{history}"' in rows[1]
    assert "8 earlier responses not shown here: see the full PHQ-9 history" in rows[1]
    shown = responses[-RECENT:]
    for row, response in zip(rows[2:], shown, strict=True):
        assert _day(response) in row and f"<td>{response.total}</td>" in row
    for left_out in responses[1:-RECENT]:
        assert _day(left_out) not in html.split('id="measure-charts"')[0]
    assert "Shown: the baseline and the 12 most recent of 21 responses" in html
    assert f'<a href="{history}">See the full PHQ-9 history: all 21 responses, {PAGE_SIZE} a page</a>' in html
    # The last row: 2 from 20 = -18, -90 %, response, remission, reliably improved.
    last = rows[-1]
    assert "<td>-18</td>" in last and "<td>-90 %</td>" in last
    assert "Response</span>" in last and "Remission</span>" in last and "Reliably improved" in last
    chart = json.loads(html.split('id="measure-charts" type="application/json">')[1].split("</script>")[0])
    assert [p["y"] for p in chart[0]["points"]] == totals
    # the chart plots the clinic's wall clock (issue 18, one clock): local time, no offset
    wall = timezone.localtime(responses[0].completed_at).replace(tzinfo=None).isoformat()
    assert chart[0]["points"][0]["x"] == wall


@pytest.mark.django_db
def test_short_history_shows_every_row_without_a_link(world: Any, client: Any, clock_frozen: Any) -> None:
    responses = _history(world, [20, *([12] * RECENT)])  # baseline + 12: nothing left out
    client.force_login(world.nurse)
    html = _page(client, world)
    rows = _body_rows(html)
    assert len(rows) == RECENT + 1 and "Baseline" in rows[0]
    assert [r for r in rows if 'class="gap"' in r] == []
    assert f"measures/patients/{world.patient.pk}/history/" not in html and "Shown:" not in html
    assert all(_day(r) in html for r in responses)


@pytest.mark.django_db
def test_safety_marks_and_labels_of_the_recent_rows(world: Any, client: Any, clock_frozen: Any) -> None:
    """Item-9 flag, relapse, response and remission labels, percent n/a and the paper entrant show on
    the recent rows exactly as before (left-out rows keep theirs on the full-history view)."""
    _history(world, [0, *([3] * 10)])  # baseline 0: percent change is n/a
    submit(world, PHQ_MILD_ITEM9)  # total 10 with item 9 = 2
    client.force_login(world.prescriber)
    rows = _body_rows(_page(client, world))
    last = rows[-1]
    assert '10 <span class="badge danger">Item 9: 2</span>' in last
    assert "<td>+10</td>" in last and "<td>n/a (baseline 0)</td>" in last
    assert f"Paper form entered by staff ({world.prescriber.full_name})" in last
    html = _page(client, world)
    assert "Urgent safety alert" in html and "PHQ-9 item 9 answered 2" in html

    other = make_patient(world.clinic, care_team=[world.prescriber])
    _history(world, [20, 9, 14, 4, *([3] * 12)], patient=other, source="portal")
    rows = _body_rows(_page(client, world, other))
    assert len(rows) == 14 and "3 earlier responses not shown here" in rows[1]
    assert all("Response</span>" in r and "Remission</span>" in r for r in rows[2:])
    assert "Relapse</span>" not in " ".join(rows)  # the relapse (14 after 9) is a left-out row
    history = reverse("measures:history", kwargs={"patient_id": other.pk, "instrument": "PHQ-9"})
    full = _body_rows(client.get(history).content.decode())
    assert len(full) == 16
    assert "Response</span>" in full[1] and "Relapse</span>" in full[2]
    assert "Remission</span>" in full[3] and "<td>-80 %</td>" in full[3]
    assert "Relapse</span>" not in " ".join(full[3:])
    assert all("<td>Patient portal</td>" in r for r in full)


#: The change-table row as the trajectory page rendered it before the table was bounded (template
#: filters on model instances): the new rows must read the same, cell for cell.
REFERENCE_ROW = """{% for r in rows %}<tr>
  <td>{{ r.completed_at|date:"M j, Y" }}</td>
  <td>{{ r.total }}{% if r.item9_positive %} <span class="badge danger">Item 9: {{ r.item9 }}</span>{% endif %}</td>
  <td>{{ r.severity_label|default:"—" }}{% if r.probable_ptsd %} <span class="badge warn">Probable PTSD</span>{% endif %}{% if r.diagnosis_label %}<br><span class="muted">{{ r.diagnosis_label }}</span>{% endif %}</td>
  {% if r.is_baseline %}<td colspan="5"><span class="badge">Baseline</span></td>{% else %}
  <td>{{ r.change|stringformat:"+d" }}</td>
  <td>{% if r.percent_change is not None %}{{ r.percent_change|floatformat:0 }} %{% else %}n/a (baseline 0){% endif %}</td>
  <td>{% if r.is_response %}<span class="badge ok">Response</span>{% elif r.is_response is None %}n/a{% else %}No{% endif %}{% if r.is_relapse %} <span class="badge danger">Relapse</span>{% endif %}</td>
  <td>{% if r.is_remission %}<span class="badge ok">Remission</span>{% else %}No{% endif %}</td>
  <td>{{ r.reliable_change_label }}</td>
  {% endif %}
  <td>{{ r.get_source_display }}{% if r.entered_by and r.source == "paper" %} ({{ r.entered_by.full_name }}){% endif %}</td>
</tr>
{% endfor %}"""  # noqa: E501


@pytest.mark.django_db
@pytest.mark.parametrize("tz", ["America/New_York", "Pacific/Auckland"])
def test_change_rows_read_as_the_model_labels_did(world: Any, clock_frozen: Any, tz: str) -> None:
    from django.template.loader import render_to_string
    from django.utils import timezone

    relapsing = make_patient(world.clinic, care_team=[world.prescriber])
    _history(world, [0, 3, 9, 2, 11, 1])  # baseline 0: percent change n/a
    _history(world, [20, 9, 14, 4, 13], patient=relapsing, source="portal")
    submit(world, PHQ_MILD_ITEM9, patient=relapsing, source="email_link")
    submit(world, [4] * 20, instrument="PCL-5", completed_at=clock.now() - 30 * DAY)  # probable PTSD
    submit(world, [1] * 20, instrument="PCL-5", completed_at=clock.now() - 2 * DAY)
    submit(world, [2, 2, 2, 1, 1, 1, 0], instrument="GAD-7")
    models, rows = [], []
    with timezone.override(tz):  # dates are written in the time zone of the request
        for patient in (world.patient, relapsing):
            models += list(
                InstrumentResponse.objects.filter(patient=patient, episode__ended_at__isnull=True)
                .select_related("entered_by")
                .order_by("completed_at", "id")
            )
            rows += selectors.change_rows(selectors.change_table_values(patient))
        before = engines["django"].from_string(REFERENCE_ROW).render({"rows": models})
        table = render_to_string("measures/_change_table.html", {"rows": rows, "hidden": 0})
    assert any(m.percent_change is None and not m.is_baseline for m in models)
    assert any(m.is_relapse for m in models) and any(m.probable_ptsd for m in models)
    assert {m.source for m in models} == {"paper", "portal", "email_link"}
    after = table.split("<tbody>")[1].split("</tbody>")[0]
    assert re.sub(r"\s+", " ", after).strip() == re.sub(r"\s+", " ", before).strip()


# ---------------------------------------------------------------- the full-history view


@pytest.mark.django_db
def test_full_history_is_paginated_oldest_first(world: Any, client: Any, clock_frozen: Any) -> None:
    totals = [20 - (i % 15) for i in range(PAGE_SIZE + 7)]
    responses = _history(world, totals)
    client.force_login(world.therapist)
    url = reverse("measures:history", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"})
    first = client.get(url).content.decode()
    rows = _body_rows(first)
    assert len(rows) == PAGE_SIZE and "Baseline" in rows[0] and _day(responses[0]) in rows[0]
    assert _day(responses[PAGE_SIZE - 1]) in rows[-1]
    assert f"({len(totals)} in all)" in first and "page 1 of 2" in first
    assert '<nav class="pagination" aria-label="PHQ-9 history pages">' in first
    assert '<span aria-current="page">Page 1 of 2</span>' in first
    assert '<a href="?page=2" rel="next">Next</a>' in first and 'rel="prev"' not in first
    second = client.get(url, {"page": 2}).content.decode()
    rows = _body_rows(second)
    assert [r.split("</td>")[0] for r in rows] == [f"> <td>{_day(r)}" for r in responses[PAGE_SIZE:]]
    assert '<a href="?page=1" rel="prev">Previous</a>' in second and 'rel="next"' not in second
    back = reverse("measures:patient", kwargs={"patient_id": world.patient.pk})
    assert f'href="{back}"' in second
    assert client.get(url, {"page": "x"}).status_code == 200  # a bad page number shows page 1


@pytest.mark.django_db
def test_full_history_refusals_and_audit(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.audit.models import AuditEvent

    submit(world, phq(10))
    client.force_login(world.prescriber)
    url = reverse("measures:history", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"})
    before = AuditEvent.objects.count()
    assert client.get(url).status_code == 200
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert event is not None and (event.action, event.patient_id) == ("view", world.patient.pk)
    unknown = reverse("measures:history", kwargs={"patient_id": world.patient.pk, "instrument": "XYZ"})
    assert client.get(unknown).status_code == 404
    elsewhere = reverse(
        "measures:history", kwargs={"patient_id": world.other_clinic_patient.pk, "instrument": "PHQ-9"}
    )
    assert client.get(elsewhere).status_code == 404
    client.force_login(world.front_desk)
    assert client.get(url).status_code == 403
    empty = reverse("measures:history", kwargs={"patient_id": world.patient.pk, "instrument": "GAD-7"})
    client.force_login(world.prescriber)
    assert "No GAD-7 responses in the current episode." in client.get(empty).content.decode()


# ---------------------------------------------------------------- reads: one query each


@pytest.mark.django_db
def test_outcome_settings_are_read_once_for_every_instrument(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    OutcomeConfig.objects.create(
        clinic=world.clinic,
        instrument="GAD-7",
        remission_below=4,
        response_min_percent_drop=50,
        rci_sd=4.0,
        rci_r=0.85,
        rc_min_points=5,
    )
    submit(world, phq(12))
    submit(world, [1] * 7, instrument="GAD-7")
    submit(world, [2] * 20, instrument="PCL-5")
    client.force_login(world.prescriber)
    with CaptureQueriesContext(connection) as ctx:
        html = _page(client, world)
    reads = [q for q in ctx.captured_queries if 'FROM "measures_outcomeconfig"' in q["sql"]]
    assert len(reads) == 1
    assert (
        "GAD-7 scores against the baseline (response, remission below 4, reliable change ≥ 5.0 points)"
        in html
    )
    assert "PCL-5 scores against the baseline (response, remission below 33," in html
    assert services.outcome_settings_for(world.clinic, "GAD-7").remission_below == 4


@pytest.mark.django_db
def test_latest_by_instrument_one_row_per_instrument_in_one_query(world: Any, clock_frozen: Any) -> None:
    _history(world, [20, 15, 9])
    services.episode_restart(Actor.system(world.clinic), world.patient, instrument="PHQ-9")
    newest = submit(world, phq(7), completed_at=clock.now() - dt.timedelta(hours=1))
    same_time = newest.completed_at
    gad_a = submit(world, [1] * 7, instrument="GAD-7", completed_at=same_time)
    gad_b = submit(world, [2] * 7, instrument="GAD-7", completed_at=same_time)  # same instant: higher id
    with CaptureQueriesContext(connection) as ctx:
        latest = selectors.latest_by_instrument(world.patient)
    assert len(ctx.captured_queries) == 1
    assert latest == [
        {"instrument": "GAD-7", "total": 14, "severity": gad_b.severity, "completed_at": same_time},
        {"instrument": "PHQ-9", "total": 7, "severity": "mild", "completed_at": same_time},
    ]
    assert gad_a.pk < gad_b.pk
    assert selectors.latest_by_instrument(world.other_patient) == []


@pytest.mark.django_db
def test_portal_points_are_every_response_of_the_open_episodes(world: Any, clock_frozen: Any) -> None:
    old = _history(world, [20, 15])
    services.episode_restart(Actor.system(world.clinic), world.patient, instrument="PHQ-9")
    now = _history(world, [14, 9, 6])
    submit(world, [1] * 7, instrument="GAD-7")
    with CaptureQueriesContext(connection) as ctx:
        views = selectors.patient_instruments(world.patient)
    assert len(ctx.captured_queries) == 1
    assert [(v.key, v.max_total) for v in views] == [("PHQ-9", 27), ("GAD-7", 21)]
    assert [(p.completed_at, p.total) for p in views[0].rows] == [(r.completed_at, r.total) for r in now]
    assert [p.total for p in views[0].rows] == [14, 9, 6] and old[0].total == 20  # not the closed episode


@pytest.mark.django_db
def test_chart_panel_shows_open_alerts_and_latest_scores(world: Any, client: Any, clock_frozen: Any) -> None:
    first = submit(world, PHQ_MILD_ITEM9, completed_at=clock.now() - 3 * DAY)
    SafetyAlert.objects.filter(response=first).update(
        acknowledged_at=clock.now(), acknowledged_by=world.prescriber, action="called_patient"
    )
    latest = submit(world, [0, 0, 0, 0, 0, 0, 0, 0, 1])  # open, not urgent
    url = reverse("patients:chart", kwargs={"patient_id": world.patient.pk})
    client.force_login(world.prescriber)
    chart = client.get(url).content.decode()
    assert chart.count('class="alert-box" role="alert"') == 1  # the acknowledged one is not shown
    assert "<strong>Safety alert</strong>" in chart and "Urgent safety alert" not in chart
    assert "Overdue" not in chart
    clock.advance(dt.timedelta(hours=25))
    chart = client.get(url).content.decode()
    assert '<span class="badge danger">Overdue</span>' in chart
    home = client.get(reverse("core:home")).content.decode()  # the dashboard widget: name, MRN, overdue
    assert world.patient.display_name in home and world.patient.mrn in home
    assert '<span class="badge danger">Overdue</span>' in home and "Review today" in home
    severity = latest.severity.replace("_", "").capitalize()
    assert f"<td>PHQ-9</td><td>1</td><td>{severity}</td><td>{_day(latest)}</td>" in chart


# ---------------------------------------------------------------- query counts do not grow


def _count(client: Any, url: str) -> int:
    client.get(url)  # warm session / MFA caches
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.django_db
def test_query_counts_are_the_same_with_1_and_50_responses(
    world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any
) -> None:
    pages = {
        "trajectory": (
            world.prescriber,
            reverse("measures:patient", kwargs={"patient_id": world.patient.pk}),
        ),
        "history": (
            world.prescriber,
            reverse("measures:history", kwargs={"patient_id": world.patient.pk, "instrument": "PHQ-9"}),
        ),
        "chart": (world.prescriber, reverse("patients:chart", kwargs={"patient_id": world.patient.pk})),
        "home": (world.prescriber, reverse("core:home")),
        "portal": (world.patient_user, reverse("portal:index")),
    }
    submit(world, PHQ_MILD_ITEM9, completed_at=clock.now() - 60 * DAY)
    counts = {}
    for name, (user, url) in pages.items():
        client.force_login(user)
        counts[name] = _count(client, url)
    _history(world, [20 - (i % 17) for i in range(49)])
    assert InstrumentResponse.objects.filter(patient=world.patient).count() == 50
    for name, (user, url) in pages.items():
        client.force_login(user)
        assert _count(client, url) == counts[name], name
        with django_assert_max_num_queries(counts[name]):
            client.get(url)
    assert counts["trajectory"] <= 16 and counts["history"] <= 13
