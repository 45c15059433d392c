"""Benchmark targets: which URLs each scenario requests, as whom, with which body (JSON on stdout).

Run by bench/run.py with the bench settings against the working copy of a seeded database:
    python bench/prepare.py targets      -> JSON scenarios
    python bench/prepare.py fingerprint  -> schema + generator fingerprint (cache key)
    python bench/prepare.py export-kickoff / export-result <job> <task>  -> the Bulk export measurement

A scenario whose app, URL or data does not exist yet is emitted with "unavailable": "<reason>"
so the report says "not available yet" instead of failing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kapclinic.benchdata.settings")

import django  # noqa: E402

django.setup()

from django.apps import apps  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402

from kapclinic.benchdata.scale import BENCH_DOMAIN, BENCH_PASSWORD, MARKER_SLUG, fingerprint_text  # noqa: E402

# Targets from the issue (20,000 patients, concurrency 4): reads p95 <= 150 ms, writes <= 100 ms,
# outcomes dashboard <= 500 ms.
READ_P95_MS, WRITE_P95_MS, OUTCOMES_P95_MS = 150, 100, 500


def _url(name: str, **kwargs: Any) -> str | None:
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


def _scenario(name: str, title: str, role: str, paths: list[str | None] | None, **kw: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "name": name,
        "title": title,
        "role": role,
        "method": "GET",
        "kind": "read",
        "target_p95_ms": READ_P95_MS,
        "expect": 200,
        "body": "",
        "floor": False,
    }
    s.update(kw)
    good = [p for p in (paths or []) if p]
    if not good and "unavailable" not in s:
        s["unavailable"] = "not available yet (URL not found)"
    s["paths"] = good
    return s


def _form_body(form: Any, values: dict[str, Any]) -> dict[str, str]:
    """A valid POST body for a Django form: given values by field name, else the first choice."""
    from django import forms as djf

    data: dict[str, str] = {}
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        if name in values:
            data[key] = str(values[name])
        elif isinstance(field, djf.BooleanField):
            data[key] = "on"
        elif isinstance(field, djf.ChoiceField):
            choices = [c for c, _ in field.choices if c not in ("", None)]
            if choices:
                data[key] = str(choices[0])
        elif isinstance(field, djf.DateField):
            data[key] = dt.date.today().isoformat()
        elif field.initial is not None:
            data[key] = str(field.initial)
    return data


def _monitoring_session(clinic: Any, patient: Any, prescriber: Any, nurse: Any) -> tuple[Any, str | None]:
    """A dosing session in the monitoring state for the vitals-entry scenario (created per run)."""
    from kapclinic.core import clock

    try:
        Session = apps.get_model("kap_sessions", "DosingSession")
    except LookupError:
        return None, "not available yet (no sessions app)"
    try:
        template = Session.objects.filter(patient__clinic=clinic, state="discharged").order_by("-id").first()
        now = clock.now()
        session = Session.objects.create(
            clinic=clinic,
            patient=patient,
            protocol_id=template.protocol_id if template else "ketamine-iv-racemic",
            protocol_version=template.protocol_version if template else "1.0.0",
            scheduled_for=now - dt.timedelta(minutes=40),
            state="monitoring",
            created_by=prescriber,
            weight_kg=template.weight_kg if template else None,
            checked_in_at=now - dt.timedelta(minutes=40),
            predose_passed_at=now - dt.timedelta(minutes=30),
            first_dose_at=now - dt.timedelta(minutes=20),
            monitoring_started_at=now - dt.timedelta(minutes=15),
        )
        admin_model = apps.get_model("kap_sessions", "Administration")
        if template is not None:
            src = admin_model.objects.filter(session=template).first()
            if src is not None:
                src.pk = None
                src.id = None
                src.session = session
                src._state.adding = True
                src.save()
    except Exception as exc:  # a model mid-change: report, do not fail the run
        return None, f"could not create a monitoring session ({type(exc).__name__})"
    return session, None


def _inventory(clinic: Any) -> list[dict[str, Any]]:
    """Controlled-substance pages (issue 14): the stock page, per-container ledgers (the longest ones)
    and the administration log for the last month."""
    try:
        from django.db.models import Count

        Registration = apps.get_model("inventory", "Registration")
        Container = apps.get_model("inventory", "Container")
    except LookupError:
        why = "not available yet (no inventory app)"
        return [_scenario("inventory_ledger", "Container ledger", "prescriber", [], unavailable=why)]
    reg = Registration.objects.filter(clinic=clinic).first()
    if reg is None:
        why = "not available yet (no seeded registration)"
        return [_scenario("inventory_ledger", "Container ledger", "prescriber", [], unavailable=why)]
    longest = (
        Container.objects.filter(registration=reg).annotate(n=Count("entries")).order_by("-n", "id")[:20]
    )
    today = dt.date.today()
    month = urlencode(
        {"registration": reg.dea_number, "start": (today - dt.timedelta(days=30)).isoformat(), "end": today}
    )
    return [
        _scenario(
            "inventory_stock", "Controlled substances: stock page", "prescriber", [_url("inventory:index")]
        ),
        _scenario(
            "inventory_ledger",
            "Controlled substances: per-container ledger",
            "prescriber",
            [_url("inventory:container", container_id=c.pk) for c in longest],
        ),
        _scenario(
            "inventory_admin_log",
            "Controlled substances: administration log, one month",
            "prescriber",
            [f"{_url('inventory:administration_log')}?{month}"],
        ),
    ]


def targets() -> dict[str, Any]:
    from kapclinic.accounts.models import Clinic, User
    from kapclinic.patients.models import Patient, TimelineEvent

    clinic = Clinic.objects.get(slug=MARKER_SLUG)
    users = {
        role: f"bench-{role.replace('_', '')}@{BENCH_DOMAIN}"
        for role in ("admin", "prescriber", "therapist", "nurse", "front_desk", "patient")
    }
    bench_patient = Patient.objects.get(user__email=users["patient"])
    therapist = User.objects.get(email=users["therapist"])
    prescriber = User.objects.get(email=users["prescriber"])
    nurse = User.objects.get(email=users["nurse"])
    # 50 treated patients of the clinic, spread over its history (ids follow time), plus the long one.
    treated = Patient.objects.filter(clinic=clinic).exclude(pathway_status__in=["inquiry"]).order_by("id")
    total = treated.count()
    step = max(1, total // 50)
    pids = [*list(treated.values_list("id", flat=True)[::step][:49]), bench_patient.pk]
    mrns = list(Patient.objects.filter(pk__in=pids).values_list("mrn", flat=True))
    last_names = sorted(
        {n[:3] for n in Patient.objects.filter(pk__in=pids).values_list("legal_last_name", flat=True)}
    )
    # A timeline cursor one page into the long history (keyset pagination of older events).
    events = list(
        TimelineEvent.objects.filter(patient=bench_patient)
        .order_by("-at", "-id")
        .values_list("at", "id")[24:25]
    )
    cursor = urlencode({"at": events[0][0].isoformat(), "id": events[0][1]}) if events else ""

    sc: list[dict[str, Any]] = []
    sc.append(
        _scenario("floor", "Floor: bare authenticated view", "prescriber", [_url("bench:floor")], floor=True)
    )
    sc.append(
        _scenario(
            "floor_query",
            "Floor: + one indexed query",
            "prescriber",
            [f"{_url('bench:floor_query')}?id={p}" for p in pids],
            floor=True,
        )
    )
    sc.append(
        _scenario(
            "floor_audited",
            "Floor: + an audited patient read",
            "prescriber",
            [f"{_url('bench:floor_audited')}?id={p}" for p in pids],
            floor=True,
        )
    )
    sc.append(_scenario("caseload", "Caseload dashboard (therapist home)", "therapist", [_url("core:home")]))
    sc.append(_scenario("home_prescriber", "Prescriber dashboard (home)", "prescriber", [_url("core:home")]))
    sc.append(
        _scenario(
            "patient_list",
            "Patient list search (paginated)",
            "front_desk",
            [f"{_url('patients:list')}?q={n}" for n in last_names] + [f"{_url('patients:list')}?page=3"],
        )
    )
    sc.append(
        _scenario(
            "chart",
            "Patient chart with timeline",
            "prescriber",
            [_url("patients:chart", patient_id=p) for p in pids],
        )
    )
    sc.append(
        _scenario(
            "timeline_older",
            "Timeline, an older page (keyset)",
            "prescriber",
            [f"{_url('patients:timeline', patient_id=bench_patient.pk)}?{cursor}"] if cursor else [],
        )
    )
    sc.append(
        _scenario(
            "trajectory",
            "Trajectory chart data (measures)",
            "prescriber",
            [_url("measures:patient", patient_id=p) for p in pids],
        )
    )
    sc.append(
        _scenario(
            "outcomes",
            "Clinic outcomes dashboard",
            "prescriber",
            [_url("measures:outcomes")],
            target_p95_ms=OUTCOMES_P95_MS,
        )
    )
    sc.append(
        _scenario(
            "audit_search",
            "Audit log search (by record number)",
            "admin",
            [f"{_url('audit:log')}?{urlencode({'mrn': m})}" for m in mrns] + [_url("audit:log")],
        )
    )
    sc.append(_scenario("portal_home", "Portal home (long history)", "patient", [_url("portal:index")]))
    sc.extend(_inventory(clinic))
    # FHIR API (issue 15, docs/fhir-api.md): p95 <= 100 ms for a patient read and a 50-result Observation
    # search by patient and LOINC code (here through the prescriber's session: user context).
    sc.append(
        _scenario(
            "fhir_patient_read",
            "FHIR Patient read",
            "prescriber",
            [f"/fhir/Patient/p{p}" for p in pids],
            target_p95_ms=100,
        )
    )
    sc.append(
        _scenario(
            "fhir_observation_search",
            "FHIR Observation search (patient + PHQ-9 LOINC, _count=50)",
            "prescriber",
            [f"/fhir/Observation?patient=p{p}&code=http://loinc.org%7C44261-6&_count=50" for p in pids],
            target_p95_ms=100,
        )
    )

    sc.extend(_billing(clinic, pids))
    sc.extend(_messages(clinic))

    # Writes.
    q = _questionnaire(bench_patient)
    sc.append(q)
    sc.append(_vitals(clinic, bench_patient, prescriber, nurse))
    for s in sc:
        s.setdefault("unavailable", None)
    return {
        "password": BENCH_PASSWORD,
        "users": users,
        "login_url": reverse("accounts:login"),
        "health_url": reverse("core:healthz"),
        "patients": {"clinic": clinic.pk, "count_in_clinic": Patient.objects.filter(clinic=clinic).count()},
        "therapist_caseload": Patient.objects.filter(care_team__user=therapist).count(),
        "bench_patient_timeline": TimelineEvent.objects.filter(patient=bench_patient).count(),
        "scenarios": sc,
    }


def _billing(clinic: Any, pids: list[int]) -> list[dict[str, Any]]:
    """The patient ledger with running balance (issue 16: "the patient ledger at 20,000 patients meets
    the read-page targets"), as front desk, for the sampled patients that have one (the benchmark patient,
    with the longest history, among them)."""
    title = "Billing: patient ledger with running balance"
    try:
        ChargeLine = apps.get_model("billing", "ChargeLine")
    except LookupError:
        return [
            _scenario(
                "billing_ledger", title, "front_desk", [], unavailable="not available yet (no billing app)"
            )
        ]
    billed = list(
        ChargeLine.objects.filter(patient_id__in=pids).values_list("patient_id", flat=True).distinct()
    )
    if not billed:
        why = "not available yet (no seeded charges)"
        return [_scenario("billing_ledger", title, "front_desk", [], unavailable=why)]
    return [
        _scenario(
            "billing_ledger",
            title,
            "front_desk",
            [_url("billing:patient", patient_id=p) for p in sorted(billed)],
        )
    ]


def _messages(clinic: Any) -> list[dict[str, Any]]:
    """Issue 17: "the staff inbox and the notification count at 20,000 patients meet the read-page
    targets": the inbox of a therapist (their caseload's threads) and of a prescriber (the whole
    clinic's), and the bell's count the header polls every 30 s (every notification source)."""
    try:
        Thread = apps.get_model("conversations", "Thread")
    except LookupError:
        Thread = None
    why = None
    if Thread is None:
        why = "not available yet (no conversations app)"
    elif not Thread.objects.filter(clinic=clinic).exists():
        why = "not available yet (no seeded threads)"
    extra = {"unavailable": why} if why else {}
    inbox, badge = _url("conversations:inbox"), _url("notifications:badge")
    return [
        _scenario(
            "inbox_therapist", "Messages: staff inbox (therapist, caseload)", "therapist", [inbox], **extra
        ),
        _scenario(
            "inbox_prescriber",
            "Messages: staff inbox (prescriber, whole clinic)",
            "prescriber",
            [inbox],
            **extra,
        ),
        _scenario(
            "bell_prescriber", "Notification count (bell poll, prescriber)", "prescriber", [badge], **extra
        ),
        _scenario(
            "bell_therapist", "Notification count (bell poll, therapist)", "therapist", [badge], **extra
        ),
    ]


def _questionnaire(patient: Any) -> dict[str, Any]:
    url = _url("measures:my_take", instrument="PHQ-9")
    base = {"kind": "write", "method": "POST", "target_p95_ms": WRITE_P95_MS, "expect": None}
    if url is None:
        return _scenario("questionnaire", "Questionnaire submission (portal PHQ-9)", "patient", [], **base)
    try:
        from kapclinic.clinical.instruments.loader import get_instrument
        from kapclinic.measures.forms import InstrumentForm

        inst = get_instrument("PHQ-9")
        form = InstrumentForm(inst)
        body = _form_body(form, {})
        body["instrument_version"] = inst.version
    except Exception as exc:
        return _scenario(
            "questionnaire", "Questionnaire submission (portal PHQ-9)", "patient", [],
            unavailable=f"not available yet ({type(exc).__name__})", **base,
        )  # fmt: skip
    return _scenario(
        "questionnaire",
        "Questionnaire submission (portal PHQ-9)",
        "patient",
        [url],
        body=urlencode(body),
        **base,
    )


def _vitals(clinic: Any, patient: Any, prescriber: Any, nurse: Any) -> dict[str, Any]:
    base = {"kind": "write", "method": "POST", "target_p95_ms": WRITE_P95_MS, "expect": None}
    title = "Vitals entry during a dosing session"
    session, problem = _monitoring_session(clinic, patient, prescriber, nurse)
    if session is None:
        return _scenario("vitals", title, "nurse", [], unavailable=problem, **base)
    url = _url("sessions:vitals", patient_id=patient.pk, session_id=session.pk)
    try:
        from kapclinic.sessions import forms as sf

        body = _form_body(sf.VitalsForm(), {"sbp": 128, "dbp": 82, "hr": 76, "rr": 14, "spo2": 98})
    except Exception as exc:
        return _scenario(
            "vitals", title, "nurse", [], unavailable=f"not available yet ({type(exc).__name__})", **base
        )
    return _scenario("vitals", title, "nurse", [url], body=urlencode(body), **base)


# ------------------------------------------------------------------ Bulk export (issue 15)


def export_kickoff() -> dict[str, Any]:
    """Queue a Bulk export of the whole clinic under test (every type, as `GET /fhir/Group/g<id>/$export`
    queues it: fhirapi.exports.kick_off, cut into parts, one task each), for bench/run.py to run with
    `db_worker --batch` workers under /usr/bin/time. A backend client of the clinic is registered for it
    (the job belongs to a client)."""
    import uuid

    from django_tasks_db.models import DBTaskResult
    from joserfc.jwk import ECKey

    from kapclinic.accounts.models import Clinic
    from kapclinic.core import clock
    from kapclinic.core.actor import Actor
    from kapclinic.fhirapi import clients, exports
    from kapclinic.fhirapi.exports import EXPORT_TYPES
    from kapclinic.fhirapi.models import ExportJob
    from kapclinic.patients.models import Patient

    clinic = Clinic.objects.get(slug=MARKER_SLUG)
    key = ECKey.generate_key("P-384", parameters={"kid": "bench", "alg": "ES384"})
    client = clients.register(
        Actor.system(clinic),
        clinic,
        name="Bench registry",
        scopes="system/*.rs",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    waiting = DBTaskResult.objects.filter(status="READY").count()
    job = ExportJob.objects.create(
        id=uuid.uuid4(),
        clinic=clinic,
        client=client,
        request_url=f"http://127.0.0.1/fhir/Group/g{clinic.pk}/$export",
        types=",".join(EXPORT_TYPES),
        transaction_time=clock.now(),
    )
    exports.start(job)  # outside a transaction: the parts are queued at once
    return {
        "job": str(job.pk),
        "parts": job.parts.count(),
        "patients": Patient.objects.filter(clinic=clinic).count(),
        "other_tasks_waiting": waiting,
    }


def export_result(job_id: str) -> dict[str, Any]:
    from django.db.models import Max, Min
    from django_tasks_db.models import DBTaskResult

    from kapclinic.fhirapi.models import ExportJob

    job = ExportJob.objects.get(pk=job_id)
    tasks = DBTaskResult.objects.filter(
        task_path="kapclinic.fhirapi.tasks.run_export_part", args_kwargs__args__0=job_id
    )
    span = tasks.aggregate(start=Min("started_at"), end=Max("finished_at"))
    seconds = None
    if span["start"] and span["end"]:
        seconds = (span["end"] - span["start"]).total_seconds()
    counts: dict[str, int] = {}
    for o in job.output:
        counts[o["type"]] = counts.get(o["type"], 0) + o["count"]
    return {
        "status": job.status,
        "progress": job.progress,
        "error": job.error,
        "task_seconds": seconds,  # first part started to last part finished
        "parts_done": job.parts.filter(done=True).count(),
        "files": len(job.output),
        "resources": sum(o["count"] for o in job.output),
        "counts": counts,
    }


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "targets"
    if what == "fingerprint":
        print(fingerprint_text())
    elif what == "export-kickoff":
        print(json.dumps(export_kickoff()))
    elif what == "export-result":
        print(json.dumps(export_result(sys.argv[2])))
    else:
        print(json.dumps(targets(), default=str))
