"""Issue #7: the chart reads each fact once, only the shown columns, and a fixed number of rows.

The chart's own reads (tables of the patients, intake, consent, treatment and notes apps) are counted
exactly; the whole page (other apps' panels included) must cost the same with a short or a long history.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from kapclinic.core import clock
from kapclinic.notes import services as note_services
from kapclinic.patients import services
from kapclinic.patients.models import TimelineCategory
from kapclinic.patients.selectors import timeline_page
from kapclinic.testing.factories import actor_for, make_patient
from kapclinic.treatment.testing import make_dosing_ready

pytestmark = pytest.mark.django_db

_CHART_TABLES = re.compile(r'^SELECT .*? FROM "(patients|intake|consent|treatment|notes)_', re.DOTALL)

#: Queries of the chart on the chart apps' tables, for a patient with a signed eligibility decision,
#: current consent and a signed plan: the patient, the timeline, the current medications, the decision
#: with its assessment, the consent document, the signature, the plans, the notes, the care team, the
#: diagnoses and the allergies (25 queries on the whole page before issue #7, 15 of them here).
CLINICAL_READS = 11
#: The front desk sees the patient, the administrative timeline and the care team.
FRONT_DESK_READS = 3


def _chart_reads(client: Any, patient: Any) -> tuple[int, int, Any]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(f"/patients/{patient.pk}/")
    assert response.status_code == 200
    mine = [q["sql"] for q in ctx.captured_queries if _CHART_TABLES.match(q["sql"])]
    return len(mine), len(ctx.captured_queries), response


def _grow(world: Any, n: int) -> None:
    """n more of everything the chart lists: timeline events (clinical and administrative), notes,
    diagnoses, medications and allergies."""
    actor = actor_for(world.prescriber, world.clinic)
    for i in range(n):
        clock.advance(dt.timedelta(minutes=5))
        services.diagnosis_add(actor, world.patient, icd10="F33.1", snomed="", description=f"Dx {i}")
        services.medication_add(actor, world.patient, name=f"Vitamin {i}", dose="", drug_class="other")
        services.allergy_add(actor, world.patient, substance=f"Substance {i}", reaction="")
        note_services.note_create(actor, world.patient, template_key="soap")
        services.add_timeline_event(world.patient, kind="t", title=f"Event {i}", actor=actor)
        services.add_timeline_event(
            world.patient, kind="t", title=f"Visit {i}", category=TimelineCategory.ADMIN
        )


@pytest.mark.parametrize(
    ("persona", "reads"),
    [("prescriber", CLINICAL_READS), ("nurse", CLINICAL_READS), ("front_desk", FRONT_DESK_READS)],
)
def test_chart_reads_each_fact_once_whatever_the_history(
    world: Any, client: Any, clock_frozen: Any, persona: str, reads: int
) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    _grow(world, 1)
    client.force_login(getattr(world, persona))
    client.get(f"/patients/{world.patient.pk}/")  # warm the session
    mine_small, total_small, _ = _chart_reads(client, world.patient)
    _grow(world, 40)
    mine_large, total_large, response = _chart_reads(client, world.patient)
    assert mine_small == mine_large == reads
    assert total_small == total_large
    assert len(response.context["events"]) == 25
    if persona != "front_desk":
        assert "Ready to dose" in response.content.decode()
        assert len(response.context["medications"]) == 41


def test_therapist_chart_adds_only_the_care_team_check(world: Any, client: Any) -> None:
    make_dosing_ready(world.patient, world.prescriber)
    client.force_login(world.therapist)
    client.get(f"/patients/{world.patient.pk}/")
    mine, _, _ = _chart_reads(client, world.patient)
    assert mine == CLINICAL_READS + 1


def test_chart_lists_show_the_rows_labels_and_links(world: Any, client: Any) -> None:
    actor = actor_for(world.prescriber, world.clinic)
    services.diagnosis_add(actor, world.patient, icd10="F41.1", snomed="21897009", description="GAD <x>")
    lorazepam = services.medication_add(
        actor, world.patient, name="Lorazepam", dose="1 mg", drug_class="benzodiazepine"
    )
    services.medication_add(
        actor, world.patient, name="Sertraline", dose="50 mg", drug_class="antidepressant"
    )
    stopped = services.medication_add(actor, world.patient, name="Stopped", dose="", drug_class="opioid")
    services.medication_stop(actor, world.patient, med=stopped)
    services.allergy_add(actor, world.patient, substance="Latex", reaction="hives")
    client.force_login(world.prescriber)
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert '<strong>F41.1</strong> GAD &lt;x&gt; <span class="muted">SNOMED 21897009</span>' in html
    assert '<span class="badge warn">Benzodiazepine</span>' in html
    assert '<span class="badge ">Antidepressant</span>' in html
    assert "Stopped" not in html.split('id="med-h"')[1].split("</ul>")[0]
    assert reverse("patients:stop_medication", args=[world.patient.pk, lorazepam.pk]) in html
    assert "Latex: hives" in html
    assert f"{world.prescriber.full_name} — Prescriber" in html
    assert f"{world.therapist.full_name} — Therapist" in html
    # The fixed option lists are the same on every chart.
    assert '<option value="other" selected>Other</option>' in html
    assert '<option value="F41.1">F41.1 — ' in html


def test_timeline_rows_print_the_time_as_the_date_filter_did(world: Any) -> None:
    """The times written out in Python are what ``|date:'c'`` and ``|date:"Y-m-d H:i"`` printed."""
    for at in (
        dt.datetime(2026, 1, 15, 3, 4, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 7, 1, 23, 59, 0, 123456, tzinfo=dt.UTC),
    ):
        services.add_timeline_event(world.patient, kind="t", title="x", at=at)
    template = Template("{{ at|date:'c' }}|{{ at|date:'Y-m-d H:i' }}")
    for zone in ("America/New_York", "Australia/Adelaide", "UTC"):
        with timezone.override(zone):
            rows, _ = timeline_page(world.patient, clinical=True)
            assert rows
            for row in rows:
                assert f"{row.at_iso}|{row.at_text}" == template.render(Context({"at": row.at}))


def test_timeline_shows_actor_and_link_and_hides_clinical_rows_from_front_desk(
    world: Any, client: Any
) -> None:
    actor = actor_for(world.nurse, world.clinic)
    services.add_timeline_event(
        world.patient,
        kind="t",
        title="Clinical <b>",
        actor=actor,
        url_name="patients:edit",
        url_kwargs={"patient_id": world.patient.pk},
    )
    services.add_timeline_event(world.patient, kind="t", title="Admin", category=TimelineCategory.ADMIN)
    client.force_login(world.prescriber)
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert (
        f'<a href="/patients/{world.patient.pk}/edit/">Clinical &lt;b&gt;</a> '
        f'<span class="muted">· {world.nurse.full_name}</span>'
    ) in html
    assert "<span>Admin</span>" in html
    client.force_login(world.front_desk)
    html = client.get(f"/patients/{world.patient.pk}/").content.decode()
    assert "Clinical &lt;b&gt;" not in html and "<span>Admin</span>" in html


def test_patient_list_rows(world: Any, client: Any) -> None:
    p = make_patient(world.clinic, legal_last_name="Abbott", preferred_name="Sam", pronouns="they/them")
    client.force_login(world.front_desk)
    response = client.get("/patients/", {"q": "abb"})
    html = response.content.decode()
    assert [r.pk for r in response.context["rows"]] == [p.pk]
    assert (
        f'<a href="/patients/{p.pk}/">Abbott, Sam</a> <span class="muted">(they/them)</span></td>'
        f'<td>{p.mrn}</td><td>1985-04-12</td><td><span class="badge">Inquiry</span></td>'
    ) in html
