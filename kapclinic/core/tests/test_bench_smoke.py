"""The benchmark machinery at tiny N, so `make bench` cannot rot (no timing assertions).

Covers: seed_scale end to end (every domain runs or is reported as skipped, the audit chain it writes
verifies), the bench-only floor views and their access rules, the query-count header, the scenario
targets that bench/prepare.py derives from a seeded database, and the report formatter.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from kapclinic.accounts.models import Clinic
from kapclinic.audit.services import verify_chains
from kapclinic.benchdata.plan import build_plan
from kapclinic.patients.models import Patient, TimelineEvent
from kapclinic.testing.matrix import PERSONAS

ROOT = Path(__file__).resolve().parents[3]
BENCH_URLS = "kapclinic.benchdata.urls"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def seeded(db: Any) -> dict[str, Any]:
    out = io.StringIO()
    call_command("seed_scale", patients=24, seed=3, no_progress=True, json=True, stdout=out)
    import json

    summary: dict[str, Any] = json.loads(out.getvalue())
    return summary


def test_seed_scale_builds_a_consistent_history(seeded: dict[str, Any]) -> None:
    assert seeded["patients"] == 24
    assert Patient.objects.count() == 24
    assert Clinic.objects.filter(slug__startswith="scale-").count() >= 2
    assert seeded["domains_run"][0] == "foundation"
    # Every domain either ran or says why not (a model mid-change must not break the seed).
    from kapclinic.benchdata.domains import DOMAINS

    for domain in DOMAINS:
        assert domain.name in seeded["domains_run"] or seeded["domains_skipped"].get(domain.name)
    assert TimelineEvent.objects.count() > 24
    # The hash-chained audit trail written in bulk verifies exactly like one written by record_event.
    assert seeded["rows"]["audit.AuditEvent"] > 24
    assert verify_chains() == []
    # The benchmark patient has a long history.
    long = Patient.objects.get(user__email__startswith="bench-patient@")
    assert long.timeline.count() > 20


def test_seed_scale_refuses_a_second_dataset(seeded: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="already holds a scale dataset"):
        call_command("seed_scale", patients=5, no_progress=True, stdout=io.StringIO())


def test_plans_are_deterministic() -> None:
    import datetime as dt
    import random

    now = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
    a = build_plan(1, 0, random.Random(11), now)
    b = build_plan(1, 0, random.Random(11), now)
    assert a == b
    long = build_plan(2, 0, random.Random(5), now, long_history=True)
    assert long.status == "maintenance" and len(long.measures) > 40
    assert all(at <= now for _, at in long.measures)


@override_settings(ROOT_URLCONF=BENCH_URLS)
def test_floor_views_access(world: Any, client: Any) -> None:
    """Bench-only URLconf: signed-in users of every persona get the floor; anonymous users the login."""
    for url in ("/bench/floor/", f"/bench/floor/query/?id={world.patient.pk}"):
        for persona in PERSONAS:
            client.logout()
            user = world.persona(persona)
            if user is not None:
                client.force_login(user)
            response = client.get(url)
            if persona == "anonymous":
                assert response.status_code == 302 and "/account/login/" in response["Location"]
            else:
                assert response.status_code == 200, (url, persona)
    # The floor query only finds patients of the user's own clinic.
    client.force_login(world.other_clinic_staff)
    assert client.get(f"/bench/floor/query/?id={world.patient.pk}").content == b"none"


@override_settings(ROOT_URLCONF=BENCH_URLS)
def test_audited_floor_checks_permission_and_writes_one_audit_entry(world: Any, client: Any) -> None:
    """The third floor does what every page of a record must: the permission check and one audit entry."""
    from kapclinic.audit.models import AuditEvent

    url = f"/bench/floor/audited/?id={world.patient.pk}"
    assert "/account/login/" in client.get(url)["Location"]
    client.force_login(world.prescriber)
    before = AuditEvent.objects.count()
    response = client.get(url)
    assert response.status_code == 200 and response.content.decode() == world.patient.mrn
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert event is not None and (event.action, event.patient_id) == ("view", world.patient.pk)
    assert client.get("/bench/floor/audited/?id=x").status_code == 400  # a malformed id: a bad request
    client.force_login(world.other_clinic_staff)
    assert client.get(url).status_code == 404


def test_floor_urls_are_not_in_the_project_urlconf(client: Any, world: Any) -> None:
    client.force_login(world.prescriber)
    assert client.get("/bench/floor/").status_code == 404


def test_query_count_header_only_with_the_bench_setting(world: Any, client: Any) -> None:
    client.force_login(world.prescriber)
    assert "X-Bench-Queries" not in client.get("/home/").headers
    middleware = ["kapclinic.benchdata.middleware.QueryCountMiddleware", *settings.MIDDLEWARE]
    with override_settings(KAP_BENCH=True, MIDDLEWARE=middleware, ROOT_URLCONF=BENCH_URLS):
        bench_client = Client()  # a new handler loads the bench middleware
        bench_client.force_login(world.prescriber)
        response = bench_client.get(f"/bench/floor/query/?id={world.patient.pk}")
        assert int(response.headers["X-Bench-Queries"]) >= 1


@override_settings(ROOT_URLCONF=BENCH_URLS)
def test_prepare_targets_from_a_seeded_database(seeded: dict[str, Any]) -> None:
    prepare = _load("prepare")
    targets = prepare.targets()
    names = {s["name"] for s in targets["scenarios"]}
    assert {
        "floor",
        "floor_query",
        "floor_audited",
        "caseload",
        "chart",
        "audit_search",
        "portal_home",
        "outcomes",
    } <= names
    for s in targets["scenarios"]:
        assert s["unavailable"] or s["paths"], s["name"]
        assert s["method"] in ("GET", "POST")
    assert set(targets["users"]) >= {"admin", "prescriber", "therapist", "nurse", "front_desk", "patient"}


def test_report_formats_results() -> None:
    run = _load("run")
    import argparse

    args = argparse.Namespace(conc=[1, 4], duration=1)

    def result(n: int, p50: float) -> dict[str, Any]:
        runs = {
            c: {
                "p50": p50,
                "p95": p50 * 2,
                "p99": p50 * 3,
                "max": p50 * 4,
                "rps": 10.0,
                "requests": 10,
                "errors": 0,
                "rss_mb": 80.0,
            }
            for c in ("1", "4")
        }
        return {
            "db": "sqlite",
            "n": n,
            "seed": {
                "total_rows": 100,
                "wall_seconds": 1.0,
                "peak_rss_mb": 50,
                "domains_skipped": {"x": "why"},
            },
            "targets": {
                "patients": {"count_in_clinic": n},
                "therapist_caseload": 3,
                "bench_patient_timeline": 9,
            },
            "scenarios": {
                "floor": {
                    "title": "Floor",
                    "kind": "read",
                    "target_p95_ms": 150,
                    "floor": True,
                    "runs": runs,
                    "queries": 4,
                },
                "chart": {
                    "title": "Chart",
                    "kind": "read",
                    "target_p95_ms": 150,
                    "floor": False,
                    "runs": runs,
                    "queries": 20,
                },
                "vitals": {
                    "title": "Vitals",
                    "kind": "write",
                    "target_p95_ms": 100,
                    "floor": False,
                    "runs": {},
                    "unavailable": "not available yet",
                },
            },
        }

    text = run.report([result(10, 5.0), result(100, 6.0)], args, {"python": "3"})
    assert "| Chart | 4 |" in text and "not available yet" in text and "growth" in text
    assert "Targets at N=100" in text
