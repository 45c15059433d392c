"""Per-domain bulk generators for `seed_scale` (one `Domain` each; extend as apps land).

Each generator writes one patient's rows through `ctx.loader` (pre-assigned ids, so child rows can
point at parents without a round trip), plus that patient's timeline lines (`ctx.timeline`) and
audit events (`ctx.audit`). Clinical numbers come from the pure modules: protocols (product, route,
dose basis, vitals codes), instrument scoring (totals, severity, item 9 flags), vitals alert rules.
Symptom values themselves are synthetic.

Over 600 lines: one generator per domain, each independent and read alone; synthetic data only.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.apps import apps

from kapclinic.accounts.models import Role
from kapclinic.benchdata.plan import PatientPlan, Visit, symptom_fraction
from kapclinic.benchdata.scale import DX, Domain, ScaleContext

MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)
DX_PRIMARY = DX[0][0]  # every treated patient's first diagnosis (scale._patient)


def _m(label: str) -> Any:
    return apps.get_model(label)


# --------------------------------------------------------------------------------------------------
# intake: inquiry, assessment, signed eligibility decision
# --------------------------------------------------------------------------------------------------


def gen_intake(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    Inquiry, Assessment, Decision = (
        _m("intake.Inquiry"),
        _m("intake.Assessment"),
        _m("intake.EligibilityDecision"),
    )
    info = ctx.clinics[plan.clinic_index]
    desk = info.pick("front_desk", rng)
    ctx.loader.add(
        Inquiry,
        clinic_id=info.pk,
        name="(synthetic inquiry)",
        email=f"patient{plan.pk}@scale.kapclinic.test",
        message="",
        consent_to_contact=True,
        submission_token=f"scale-{plan.pk}",
        client_key=f"scale-{plan.pk % 997}",
        status="converted" if plan.status != "inquiry" else "new",
        patient_id=plan.pk if plan.status != "inquiry" else None,
        handled_by_id=desk if plan.status != "inquiry" else None,
        handled_at=plan.opened_at if plan.status != "inquiry" else None,
        created_at=plan.opened_at - dt.timedelta(days=rng.randint(1, 5)),
    )
    if plan.intake_at is None:
        return
    aid = ctx.loader.add(
        Assessment,
        patient_id=plan.pk,
        answers={},
        adequate_failed_trials=rng.randint(0, 4),
        systolic_bp=rng.randint(105, 145),
        diastolic_bp=rng.randint(62, 92),
        heart_rate=rng.randint(55, 95),
        spo2=rng.randint(95, 100),
        weight_kg=Decimal(rng.randint(480, 1100)) / 10,
        height_cm=Decimal(rng.randint(1520, 1950)) / 10,
        updated_at=plan.intake_at,
        updated_by_id=plan.prescriber_id,
        clinician_completed_at=plan.intake_at if plan.decision_at else None,
        version=1,
    )
    ctx.timeline(plan, plan.intake_at, "intake.assessed", "Intake assessment", actor_id=plan.prescriber_id)
    ctx.audit.add(
        plan,
        plan.intake_at,
        plan.prescriber_id,
        "prescriber",
        "update",
        object_type="intake.assessment",
        object_id=aid,
    )
    if plan.decision_at is None:
        return
    did = ctx.loader.add(
        Decision,
        patient_id=plan.pk,
        assessment_id=aid,
        assessment_version=1,
        date_of_birth=dt.date(1980, 1, 1),
        decision="eligible",
        reason="Synthetic benchmark record.",
        report={"status": "eligible", "findings": []},
        report_status="eligible",
        rule_set_id="kap-eligibility",
        rule_set_version="1.0.0",
        rule_set_digest="0" * 64,
        signed_by_id=plan.prescriber_id,
        signed_at=plan.decision_at,
    )
    ctx.timeline(
        plan, plan.decision_at, "intake.decision", "Eligibility decision signed", actor_id=plan.prescriber_id
    )
    ctx.audit.add(
        plan,
        plan.decision_at,
        plan.prescriber_id,
        "prescriber",
        "sign",
        object_type="intake.eligibilitydecision",
        object_id=did,
    )


# --------------------------------------------------------------------------------------------------
# sessions: dosing sessions with vitals every 10-15 minutes, dose, transitions, alerts
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _protocol(key: str) -> Any:
    from kapclinic.clinical.protocols.loader import get_protocol

    return get_protocol(key)


@lru_cache(maxsize=1)
def _vital_codes() -> dict[str, Any]:
    from kapclinic.clinical.vitals import LOINC, Vital

    return {v.value: LOINC[v] for v in Vital}


_STATE_PATH = [
    ("check_in", "scheduled", "checked_in", "checked_in_at", 0),
    ("pass_gate", "checked_in", "predose_passed", "predose_passed_at", 15),
    ("dose", "predose_passed", "dosing", "first_dose_at", 25),
    ("start_monitoring", "dosing", "monitoring", "monitoring_started_at", 30),
    ("start_recovery", "monitoring", "recovery", "recovery_started_at", 100),
    ("discharge", "recovery", "discharged", "discharged_at", 150),
]


def gen_sessions(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    from kapclinic.clinical.session_state import PHQ9_WINDOW_SINCE_PREVIOUS, phq9_window
    from kapclinic.clinical.vitals import Reading, evaluate_reading

    Session, Obs = _m("kap_sessions.DosingSession"), _m("kap_sessions.Observation")
    Admin, Transition, Alert = (
        _m("kap_sessions.Administration"),
        _m("kap_sessions.SessionTransition"),
        _m("kap_sessions.SessionAlert"),
    )
    if not plan.dosing:
        return
    info = ctx.clinics[plan.clinic_index]
    protocol = _protocol("esketamine-in-trd" if plan.pk % 3 == 0 else "ketamine-iv-racemic")
    codes = _vital_codes()
    weight = Decimal(rng.randint(520, 1050)) / 10
    base_sbp, base_dbp, base_hr = rng.randint(108, 138), rng.randint(64, 86), rng.randint(58, 88)
    interval = rng.choice((10, 15))
    appointments: dict[int, int] = plan.refs.get("dosing_appointment_by_visit", {})
    phq9s: list[tuple[dt.datetime, int]] = plan.refs.get("phq9", [])
    previous_dose_at: dt.datetime | None = None
    phq9_max_hours = _m("measures.MeasureSettings")._meta.get_field("pre_session_phq9_max_hours").default
    for n, visit in enumerate(plan.dosing, 1):
        start = visit.at
        nurse = plan.nurse_id or info.pick("nurse", rng)
        fields: dict[str, Any] = {}
        if visit.done:
            fields = {col: start + off * MIN for _, _, _, col, off in _STATE_PATH}
            # The PHQ-9 that counted at the gate: the latest in the clinic's default window (since the
            # previous dose, capped at the default max hours; clinical.session_state.phq9_window);
            # when none counts, the session went ahead on a waiver.
            gate_at = fields["predose_passed_at"]
            window = phq9_window(
                PHQ9_WINDOW_SINCE_PREVIOUS,
                now=gate_at,
                day_start=gate_at.replace(hour=0, minute=0, second=0, microsecond=0),
                previous_dose_at=previous_dose_at,
                max_hours=phq9_max_hours,
            )
            counted = [rid for at, rid in phq9s if window.start < at <= window.end]
            fields["phq9_done"] = bool(counted)
            fields["phq9_response_id"] = counted[-1] if counted else None
            fields["phq9_waiver_reason"] = "" if counted else "Synthetic benchmark data: PHQ-9 waived."
            previous_dose_at = fields["first_dose_at"]
        sid = ctx.loader.add(
            Session,
            clinic_id=info.pk,
            patient_id=plan.pk,
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            scheduled_for=start,
            appointment_id=appointments.get(n - 1),
            state="discharged" if visit.done else "scheduled",
            created_by_id=plan.prescriber_id,
            created_at=start - dt.timedelta(days=7),
            weight_kg=weight if visit.done else None,
            escort_name="Synthetic escort" if visit.done else "",
            medication_changes_reviewed=visit.done,
            escort_present=visit.done,
            no_driving_advice_given=visit.done,
            discharged_by_id=plan.prescriber_id if visit.done else None,
            version=len(_STATE_PATH) + 1 if visit.done else 1,
            **fields,
        )
        ctx.audit.add(
            plan,
            start - dt.timedelta(days=7),
            plan.prescriber_id,
            "prescriber",
            "create",
            object_type="sessions.dosingsession",
            object_id=sid,
        )
        if not visit.done:
            continue
        for event, frm, to, _col, off in _STATE_PATH:
            ctx.loader.add(
                Transition,
                session_id=sid,
                event=event,
                from_state=frm,
                to_state=to,
                at=start + off * MIN,
                by_id=nurse,
            )
        dose = protocol.dose
        if dose.basis == "mg_per_kg":
            mgkg = dose.default_mg_per_kg.value
            mg = (Decimal(mgkg.value) * weight).quantize(Decimal("0.01"))
            minutes = dose.infusion_minutes.value
            extra = {
                "mg_per_kg": Decimal(mgkg.value),
                "weight_basis": "actual",
                "weight_used_kg": weight,
                "infusion_minutes": int(minutes.value) if minutes else None,
            }
        else:
            mg = (rng.choice(dose.allowed_mg) if n > 1 else dose.default_mg.value).value
            extra = {"devices": int(mg / dose.unit_strengths[0].value)}
        # for the controlled-substance ledger (gen_inventory): what was given, when, by whom
        plan.refs.setdefault("doses", []).append(
            (sid, start + 25 * MIN, mg, extra.get("devices"), nurse, protocol.route)
        )
        ctx.loader.add(
            Admin,
            session_id=sid,
            product=protocol.product[:120],
            route=protocol.route,
            dose_mg=mg,
            calculation=[],
            ordered_by_id=plan.prescriber_id,
            ordered_at=start + 10 * MIN,
            administered_by_id=nurse,
            administered_at=start + 25 * MIN,
            **extra,
        )
        # Vitals: pre-dose, then every 10-15 minutes through recovery (values synthetic).
        baseline = None
        rise = rng.randint(0, 25)
        for reading_no, minute in enumerate(range(10, 151, interval), 1):
            phase = "pre_dose" if minute < 25 else ("intra" if minute < 100 else "recovery")
            bump = rise if 25 <= minute < 90 else 0
            values = {
                "sbp": base_sbp + bump + rng.randint(-6, 6),
                "dbp": base_dbp + bump // 2 + rng.randint(-4, 4),
                "hr": base_hr + rng.randint(-6, 10),
                "spo2": rng.choice((96, 97, 98, 98, 99, 99, 100)),
            }
            at = start + minute * MIN
            for key, value in values.items():
                code = codes[key]
                ctx.loader.add(
                    Obs, session_id=sid, kind="vital", code=code.loinc, display=code.display, value=value,
                    unit=code.ucum, at=at, reading=reading_no, phase=phase, recorded_by_id=nurse,
                )  # fmt: skip
            reading = Reading(sbp=values["sbp"], dbp=values["dbp"], hr=values["hr"], spo2=values["spo2"])
            if baseline is None:
                baseline = reading
            for alert in evaluate_reading(
                reading, baseline=baseline, phase="pre_dose" if phase == "pre_dose" else "intra"
            ):
                ctx.loader.add(
                    Alert, session_id=sid, rule=alert.rule, vital=alert.vital, value=alert.value,
                    threshold=alert.threshold, severity=alert.severity, message=alert.message[:300],
                    source=alert.source[:120], raised_at=at, acknowledged_by_id=nurse,
                    acknowledged_at=at + 3 * MIN, action_taken="Rechecked; clinician informed.",
                )  # fmt: skip
            if phase != "pre_dose" and reading_no % 3 == 0:
                ctx.loader.add(
                    Obs, session_id=sid, kind="sedation", code="moaas", display="MOAA/S",
                    value=rng.choice((5, 5, 5, 4, 4, 3)), unit="", at=at, reading=reading_no, phase=phase,
                    code_system="urn:kapclinic:local", recorded_by_id=nurse,
                )  # fmt: skip
        ctx.timeline(
            plan,
            start + 150 * MIN,
            "sessions.discharged",
            "Dosing session discharged",
            actor_id=plan.prescriber_id,
            ref=("sessions.dosingsession", sid),
        )
        for off in (0, 25, 150):
            ctx.audit.add(
                plan,
                start + off * MIN,
                nurse,
                "nurse",
                "update",
                object_type="sessions.dosingsession",
                object_id=sid,
            )


# --------------------------------------------------------------------------------------------------
# measures: episodes, responses with item answers, safety alerts
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _instrument(key: str) -> Any:
    from kapclinic.clinical.instruments.loader import get_instrument

    return get_instrument(key)


def gen_measures(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    from kapclinic.clinical.instruments.scoring import score
    from kapclinic.clinical.outcomes import change_from_baseline, outcome_settings

    Episode, Response = _m("measures.Episode"), _m("measures.InstrumentResponse")
    Answer, SafetyAlert = _m("measures.ItemAnswer"), _m("measures.SafetyAlert")
    if not plan.measures:
        return
    info = ctx.clinics[plan.clinic_index]
    episodes: dict[str, dict[str, Any]] = {}
    sessions_done = [v.at for v in plan.dosing if v.done]
    for key, at in plan.measures:
        inst = _instrument(key)
        frac = symptom_fraction(plan, at, rng)
        answers = []
        for item in inst.items:
            top = max(o.score for o in item.options)
            value = min(top, max(0, round(frac * top + rng.gauss(0, 0.6))))
            answers.append(value if item.scored else rng.randint(0, top))
        if key == "PHQ-9" and rng.random() > 0.15:
            answers[8] = 0  # thoughts of self-harm are the exception, not the rule
        result = score(inst, answers)
        total = result.total
        assert total is not None  # every item answered
        ep = episodes.get(key)
        if ep is None:
            ep = episodes[key] = {
                "id": ctx.loader.table(Episode).reserve_id(),
                "started": at,
                "baseline": None,
                "baseline_total": result.total,
                "totals": [],
                "settings": outcome_settings(key),
            }
        before = sum(1 for s in sessions_done if s < at)
        outcome = (
            None
            if ep["baseline"] is None
            else change_from_baseline(ep["baseline_total"], total, ep["settings"])
        )
        rid = ctx.loader.add(
            Response,
            clinic_id=info.pk,
            patient_id=plan.pk,
            episode_id=ep["id"],
            instrument=key,
            instrument_version=inst.version,
            completed_at=at,
            source="portal" if plan.user_id else "email_link",
            entered_by_id=plan.user_id,
            total=result.total,
            severity=result.severity or "",
            item9=result.item9,
            item9_positive="item9_positive" in result.flags,
            item9_urgent="item9_urgent" in result.flags,
            screen_positive="screen_positive" in result.flags,
            probable_ptsd="probable_ptsd" in result.flags,
            provisional_diagnosis=result.provisional_diagnosis or "",
            sessions_before=before,
            is_baseline=ep["baseline"] is None,
            change=outcome.change if outcome else None,
            percent_change=outcome.percent_change if outcome else None,
            is_response=outcome.response if outcome else None,
            is_remission=outcome.remission if outcome else None,
            reliable_change=outcome.reliable_change.category.value if outcome else "",
            **{f"cluster_{c.lower()}": v for c, v in result.subscales.items() if c.lower() in "bcde"},
        )
        if ep["baseline"] is None:
            ep["baseline"] = rid
        if key == "PHQ-9":  # for DosingSession.phq9_response (the sessions domain runs after this one)
            plan.refs.setdefault("phq9", []).append((at, rid))
        ep["totals"].append((result.total, outcome))
        for item, value in zip(inst.items, answers, strict=True):
            ctx.loader.add(
                Answer, response_id=rid, item_number=item.number, link_id=item.link_id, value=value
            )
        if result.item9:
            urgent = "item9_urgent" in result.flags
            ctx.loader.add(
                SafetyAlert,
                clinic_id=info.pk,
                patient_id=plan.pk,
                response_id=rid,
                urgent=urgent,
                raised_at=at,
                acknowledged_at=at + dt.timedelta(hours=rng.randint(1, 20)),
                acknowledged_by_id=plan.therapist_id,
                action=rng.choice(("called_patient", "safety_plan_reviewed", "structured_screen")),
            )
            ctx.timeline(
                plan,
                at,
                "measures.alert",
                "Safety alert raised",
                actor_id=None,
                ref=("measures.safetyalert", rid),
            )
        ctx.timeline(
            plan, at, "measures.response", f"{key} completed", ref=("measures.instrumentresponse", rid)
        )
        ctx.audit.add(
            plan,
            at,
            plan.user_id,
            "patient" if plan.user_id else "system",
            "create",
            object_type="measures.instrumentresponse",
            object_id=rid,
        )
    for key, ep in episodes.items():
        outcomes = [o for _, o in ep["totals"] if o is not None]
        ctx.loader.add(
            Episode,
            id=ep["id"],
            clinic_id=info.pk,
            patient_id=plan.pk,
            instrument=key,
            started_at=ep["started"],
            ended_at=plan.discharged_at,
            indication="F33.1",
            baseline_id=ep["baseline"],
            baseline_total=ep["baseline_total"],
            latest_total=ep["totals"][-1][0],
            followup_count=len(outcomes),
            responded=any(o.response for o in outcomes),
            latest_remission=bool(outcomes and outcomes[-1].remission),
        )


# --------------------------------------------------------------------------------------------------
# scheduling: an appointment for every intake, dosing and integration visit
# --------------------------------------------------------------------------------------------------


class _Calendar:
    """Who is booked when, so the synthetic schedule keeps the app's rule (and PostgreSQL's exclusion
    constraints, scheduling migration 0002): no clinician in a clinic and no patient in two active
    appointments at once. Intervals are kept per (who, day), so a check costs a few comparisons."""

    def __init__(self) -> None:
        self.busy: dict[tuple[Any, ...], list[tuple[dt.datetime, dt.datetime]]] = {}

    @staticmethod
    def _days(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
        first, last = start.date(), (end - MIN).date()
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def free(self, who: tuple[Any, ...], start: dt.datetime, end: dt.datetime) -> bool:
        days = self._days(start, end)
        return all(not (s < end and start < e) for day in days for s, e in self.busy.get((*who, day), ()))

    def take(self, who: tuple[Any, ...], start: dt.datetime, end: dt.datetime) -> None:
        for day in self._days(start, end):
            self.busy.setdefault((*who, day), []).append((start, end))


def _later(at: dt.datetime, days: int = 14) -> Any:
    """Start times after `at`: every 15 minutes to 19:00 that day, then 08:00-19:00 on the next `days`."""
    start = at + 15 * MIN
    while start.hour < 19 and start.date() == at.date():
        yield start
        start += 15 * MIN
    for n in range(1, days + 1):
        start = (at + n * DAY).replace(hour=8, minute=0)
        while start.hour < 19:
            yield start
            start += 15 * MIN


def _slot(
    ctx: ScaleContext,
    plan: PatientPlan,
    planned: int,
    role: str,
    at: dt.datetime,
    minutes: int,
    movable: bool,
) -> tuple[int, dt.datetime] | None:
    """A (clinician, start) for a visit planned with `planned` at `at`, keeping the app's overlap rule.

    In order: the planned clinician at the planned time; the planned clinician later (15-minute steps,
    starting by 19:00, that day then over the next two weeks; never across "now"; only for `movable`
    visits, whose time nothing has used yet); another clinician of the same role, then of another
    clinical role, at the planned time (in an order drawn from the slot's own generator, so the patient's
    random stream, and so the rest of the dataset, stays as it was). None when nobody is free."""
    cal: _Calendar = ctx.extra.setdefault("calendar", _Calendar())
    info = ctx.clinics[plan.clinic_index]
    length = minutes * MIN

    def ok(sid: int, start: dt.datetime) -> bool:
        return cal.free(("staff", info.pk, sid), start, start + length) and cal.free(
            ("patient", plan.pk), start, start + length
        )

    if ok(planned, at):
        return planned, at
    if movable:
        for start in _later(at):
            if (start < ctx.now) == (at < ctx.now) and ok(planned, start):
                return planned, start
    same = [sid for sid in info.staff[role] if sid != planned]
    random.Random(planned * 1_000_003 + int(at.timestamp())).shuffle(same)
    clinical = (Role.PRESCRIBER, Role.THERAPIST, Role.NURSE)
    others = [sid for r in clinical if r != role for sid in info.staff[r]]
    return next(((sid, at) for sid in [*same, *others] if ok(sid, at)), None)


def gen_scheduling(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    Appointment = _m("scheduling.Appointment")
    info = ctx.clinics[plan.clinic_index]
    desk = info.pick("front_desk", rng)
    cal: _Calendar = ctx.extra.setdefault("calendar", _Calendar())
    visits: list[tuple[str, Visit | None, int, int | None, str, int | None]] = []
    if plan.intake_at is not None:
        visits.append(("preparation", None, 60, plan.prescriber_id, "prescriber", None))
    visits += [("dosing", v, 150, plan.nurse_id, "nurse", i) for i, v in enumerate(plan.dosing)]
    visits += [("integration", v, 60, plan.therapist_id, "therapist", None) for v in plan.integration]
    dosing_ids: list[int] = []
    by_visit: dict[int, int] = {}
    moved: dict[int, dt.timedelta] = {}  # dosing visit -> how far it moved; its integration moves as far
    pair = {id(v): i for i, v in enumerate(plan.integration)}
    for kind, visit, minutes, planned, role, dosing_index in visits:
        if planned is None:
            continue
        if kind == "integration" and visit is not None and moved.get(pair[id(visit)]):
            shifted = visit.at + moved[pair[id(visit)]]
            if (shifted < ctx.now) == visit.done:
                visit.at = shifted
        at = visit.at if visit is not None else plan.intake_at
        assert at is not None
        done = visit.done if visit is not None else at < ctx.now
        status = "completed" if done else "booked"
        if done and rng.random() < 0.04:
            status = "no_show"
        created_at = at - dt.timedelta(days=rng.randint(3, 14))
        # Clinicians serve many patients: when the planned one is booked then, the visit moves later that
        # day or another clinician takes it (the intake's time is fixed: its assessment already has it).
        # A visit nobody is free for is not written (rare).
        found = _slot(ctx, plan, planned, role, at, minutes, movable=visit is not None)
        if found is None:
            continue
        staff, start = found
        if visit is not None and start != at:
            visit.at = start  # the session and notes of this visit follow it
            if dosing_index is not None:
                moved[dosing_index] = start - at
            created_at = start - (at - created_at)
        end = start + minutes * MIN
        if status != "no_show":  # a missed visit frees its slot (scheduling.models.ACTIVE_STATUSES)
            cal.take(("staff", info.pk, staff), start, end)
            cal.take(("patient", plan.pk), start, end)
        aid = ctx.loader.add(
            Appointment,
            clinic_id=info.pk,
            patient_id=plan.pk,
            kind=kind,
            starts_at=start,
            ends_at=end,
            staff_id=staff,
            status=status,
            created_by_id=desk,
            created_at=created_at,
            version=2 if done else 1,
        )
        if status == "completed":
            plan.refs.setdefault("completed_visits", []).append((aid, kind, start, staff))
        if kind == "dosing":
            dosing_ids.append(aid)
            if dosing_index is not None and status != "no_show":
                by_visit[dosing_index] = aid
        ctx.audit.add(
            plan,
            start - dt.timedelta(days=7),
            desk,
            "front_desk",
            "create",
            object_type="scheduling.appointment",
            object_id=aid,
        )
    plan.refs["dosing_appointments"] = dosing_ids
    # The session started from each attended dosing appointment links to it (DosingSession.appointment).
    plan.refs["dosing_appointment_by_visit"] = by_visit


# --------------------------------------------------------------------------------------------------
# notes: a signed note for the intake visit, each dosing session and each integration session
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _note_templates() -> dict[str, Any]:
    from kapclinic.notes.templates_data import builtin_templates

    by_kind: dict[str, Any] = {}
    for tpl in builtin_templates().values():
        by_kind.setdefault(tpl.kind, tpl)
    return by_kind


def gen_notes(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    Note = _m("notes.Note")
    info = ctx.clinics[plan.clinic_index]
    templates = _note_templates()
    appts = plan.refs.get("dosing_appointments", [])
    items: list[tuple[str, dt.datetime, int | None, int | None]] = []
    if plan.intake_at is not None and plan.intake_at < ctx.now:
        items.append(("preparation", plan.intake_at, plan.therapist_id, None))
    for v in plan.dosing:
        if v.done:
            items.append(("dosing_experience", v.at + 150 * MIN, plan.therapist_id, None))
    for i, v in enumerate(plan.integration):
        if v.done:
            items.append(
                ("integration", v.at + 60 * MIN, plan.therapist_id, appts[i] if i < len(appts) else None)
            )
    for kind, at, author, appt in items:
        tpl = templates.get(kind) or next(iter(templates.values()))
        if author is None:
            continue
        draft = at > ctx.now - dt.timedelta(days=2) and rng.random() < 0.5
        sections = [
            {"key": s.key, "label": s.label, "text": "Synthetic benchmark text."} for s in tpl.sections
        ]
        nid = ctx.loader.add(
            Note,
            clinic_id=info.pk,
            patient_id=plan.pk,
            kind=tpl.kind,
            template_key=tpl.key,
            template_version=tpl.version,
            title=tpl.title[:120],
            service_date=at.date(),
            sections=sections,
            status="draft" if draft else "signed",
            author_id=author,
            created_at=at,
            updated_at=at,
            signed_at=None if draft else at + 30 * MIN,
            signed_by_id=None if draft else author,
            dosing_appointment_id=appt,
            version=1 if draft else 2,
        )
        if not draft:
            ctx.timeline(
                plan, at + 30 * MIN, "notes.signed", "Note signed", actor_id=author, ref=("notes.note", nid)
            )
            ctx.audit.add(
                plan, at + 30 * MIN, author, "therapist", "sign", object_type="notes.note", object_id=nid
            )


#: Order matters: sessions link to the dosing appointment (scheduling) and to the PHQ-9 that counted
#: at the gate (measures), so both run before it.
# --------------------------------------------------------------------------------------------------
# Controlled-substance records (issue 14): each clinic's registration and products; each patient's
# doses drawn from vials received for them (a vial serves the patient's sessions in time order, the
# remainder wasted with a witness when the vial is done or 3 days after the patient's last dose), and one
# esketamine pack per session (its used devices' disposal recorded). The ledger adds up, as
# `controlled_substances verify` checks.
# --------------------------------------------------------------------------------------------------

VIAL_MG = Decimal(500)  # 50 mg/mL x 10 mL (docs/controlled-substances.md §7)
VIAL_KEPT_DAYS = 3  # synthetic practice: a patient's opened vial is wasted 3 days after their last dose


def _inventory_setup(ctx: ScaleContext) -> None:
    from kapclinic.inventory.testing import dea_number

    Reg, Loc, Product = (_m(f"inventory.{n}") for n in ("Registration", "StorageLocation", "Product"))
    inv: dict[int, dict[str, Any]] = {}
    for info in ctx.clinics:
        reg = ctx.loader.add(
            Reg,
            clinic_id=info.pk,
            dea_number=dea_number("BK", 200000 + info.index),
            registrant=f"{info.clinic.name} medical director",
            address="Synthetic",
            schedules="3,3N",
            expires_on=(ctx.now + dt.timedelta(days=400)).date(),
            created_at=ctx.now - dt.timedelta(days=900),
        )
        loc = ctx.loader.add(Loc, registration_id=reg, name="Locked cabinet A", description="")
        vial = ctx.loader.add(
            Product,
            clinic_id=info.pk,
            name="Ketamine HCl injection",
            ndc="55150-439-10",
            kind="vial",
            concentration_mg_per_ml=Decimal(50),
            volume_ml=Decimal(10),
            devices_per_pack=None,
            device_strength_mg=None,
        )
        packs = {
            n: ctx.loader.add(
                Product,
                clinic_id=info.pk,
                name="Spravato (esketamine) nasal spray",
                ndc=f"50458-028-0{n}",
                kind="device_pack",
                concentration_mg_per_ml=None,
                volume_ml=None,
                devices_per_pack=n,
                device_strength_mg=Decimal(28),
            )
            for n in (2, 3)
        }
        inv[info.pk] = {"reg": reg, "loc": loc, "vial": vial, "packs": packs, "next": 0}
    ctx.extra["inventory"] = inv


def gen_inventory(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    Receipt, Container, Entry, Draw = (
        _m(f"inventory.{n}") for n in ("Receipt", "Container", "LedgerEntry", "SessionDraw")
    )
    info = ctx.clinics[plan.clinic_index]
    inv = ctx.extra["inventory"][info.pk]
    doses = sorted(plan.refs.get("doses", []), key=lambda d: d[1])
    stocker = plan.prescriber_id

    def container(product: int, prefix: str, at: dt.datetime, content: Decimal) -> dict[str, Any]:
        inv["next"] += 1
        ident = f"{prefix}-{inv['next']:06d}"
        lot = f"LOT-{at:%y%m}"
        expiry = (at + dt.timedelta(days=540)).date()
        rid = ctx.loader.add(
            Receipt,
            registration_id=inv["reg"],
            supplier="Synthetic Wholesale Inc.",
            supplier_dea_number="RS1234567",
            invoice_number=f"INV-{inv['next']}",
            invoice_date=at.date(),
            received_on=at.date(),
            product_id=product,
            lot=lot,
            expiry=expiry,
            containers=1,
            location_id=inv["loc"],
            received_by_id=stocker,
            created_at=at,
        )
        first = ("receipt", content, at, stocker, None, None, "", f"Invoice INV-{inv['next']}")
        return {
            "rid": rid,
            "ident": ident,
            "lot": lot,
            "expiry": expiry,
            "product": product,
            "lines": [first],
        }

    def write(row: dict[str, Any], unit: str, closed: dt.datetime | None) -> int:
        balance = Decimal(0)
        entries = []
        for kind, amount, _at, _by, _witness, _sid, _route, _reason in row["lines"]:
            delta = amount if kind == "receipt" else -amount
            balance += delta
            entries.append(balance)
        opened = next((ln[2] for ln in row["lines"] if ln[0] == "administration"), None)
        cid = ctx.loader.add(
            Container,
            registration_id=inv["reg"],
            receipt_id=row["rid"],
            product_id=row["product"],
            location_id=inv["loc"],
            identifier=row["ident"],
            lot=row["lot"],
            expiry=row["expiry"],
            label_text=f"{row['ident']}\nLot {row['lot']}",
            balance=balance,
            last_seq=len(entries),
            opened_at=opened,
            closed_at=closed,
        )
        ids = {}
        for seq, (line, after) in enumerate(zip(row["lines"], entries, strict=True), 1):
            kind, amount, at, by, witness, sid, route, reason = line
            vial = unit == "mg"
            ids[seq] = ctx.loader.add(
                Entry,
                container_id=cid,
                seq=seq,
                kind=kind,
                unit=unit,
                amount=amount,
                delta=amount if kind == "receipt" else -amount,
                balance_after=after,
                amount_mg=amount if vial else amount * 28,
                amount_ml=(amount / 50).quantize(Decimal("0.0001")) if vial else None,
                devices=None if vial else int(amount),
                at=at,
                by_id=by,
                witness_id=witness,
                session_id=sid,
                patient_id=plan.pk if sid else None,
                route=route,
                reason=reason,
                reverses_id=None,
                recorded_at=at,
            )
        row["entry_ids"] = ids
        return cid

    def draw(
        row: dict[str, Any], cid: int, seq: int, sid: int, at: dt.datetime, amount: Decimal, by: int
    ) -> None:
        devices = row["product"] != inv["vial"]
        ctx.loader.add(
            Draw,
            session_id=sid,
            container_id=cid,
            entry_id=row["entry_ids"][seq],
            unit="devices" if devices else "mg",
            drawn=amount,
            given=amount,
            at=at,
            by_id=by,
            devices_disposed_at=at + 30 * MIN if devices else None,
            devices_disposed_by_id=by if devices else None,
            devices_disposal_witness_id=info.pick("prescriber", rng) if devices else None,
        )

    vial_row: dict[str, Any] | None = None
    vial_draws: list[tuple[int, int, dt.datetime, Decimal, int]] = []

    def close_vial(at: dt.datetime | None) -> None:
        nonlocal vial_row, vial_draws
        if vial_row is None:
            return
        left = VIAL_MG - sum((ln[1] for ln in vial_row["lines"] if ln[0] == "administration"), Decimal(0))
        closed = None
        if at is not None and left > 0:
            witness = info.pick("nurse", rng)  # the stock holder wastes, a nurse witnesses
            vial_row["lines"].append(("waste", left, at, stocker, witness, None, "", "Remainder: vial done"))
            closed = at
        cid = write(vial_row, "mg", closed)
        for seq, sid, dat, mg, by in vial_draws:
            draw(vial_row, cid, seq, sid, dat, mg, by)
        vial_row, vial_draws = None, []

    for sid, at, mg, devices, nurse, route in doses:
        if devices:
            pack = inv["packs"].get(int(devices)) or inv["packs"][3]
            row = container(pack, "S", at - dt.timedelta(days=1), Decimal(devices))
            row["lines"].append(("administration", Decimal(devices), at, nurse, None, sid, route, ""))
            cid = write(row, "devices", at)
            draw(row, cid, 2, sid, at, Decimal(devices), nurse)
            continue
        mg = Decimal(mg)
        if vial_row is not None:
            used = sum((ln[1] for ln in vial_row["lines"] if ln[0] == "administration"), Decimal(0))
            if VIAL_MG - used < mg:
                close_vial(at - dt.timedelta(hours=1))
        if vial_row is None:
            vial_row = container(inv["vial"], "K", at - dt.timedelta(days=1), VIAL_MG)
        vial_row["lines"].append(("administration", mg, at, nurse, None, sid, route, ""))
        vial_draws.append((len(vial_row["lines"]), sid, at, mg, nurse))
    if vial_row is not None:
        last = vial_row["lines"][-1][2]
        done = last + dt.timedelta(days=VIAL_KEPT_DAYS)
        close_vial(done if done < ctx.now else None)


# --------------------------------------------------------------------------------------------------
# Billing (issue 16): each clinic's fee schedule (the starter schedule's codes and synthetic prices,
# kapclinic/billing/testing.py); each completed visit's charge lines posted the next day; payments by
# card at the visit for most patients, in periodic lump sums (cheque, bank transfer) for the others,
# allocated to the charges they pay; the latest visits of some patients still open; the odd write-off.
# Shapes the ledger (running balance) and ageing pages read.
# --------------------------------------------------------------------------------------------------

#: visit kind -> the fee codes a visit of that kind is charged with (dosing by protocol family).
_BILLING_CODES = {
    "preparation": ("90837",),
    "integration": ("90837",),
    "dosing-iv": ("96365", "96366"),
    "dosing-esketamine": ("G2082",),
}


def _billing_setup(ctx: ScaleContext) -> None:
    from kapclinic.billing.testing import STARTER
    from kapclinic.clinical.billing import codes as code_data

    FeeItem = _m("billing.FeeItem")
    known = code_data.load().codes
    fees: dict[int, dict[str, tuple[int, Decimal, str, str, str]]] = {}
    for info in ctx.clinics:
        admin = info.staff["admin"][0]
        items = {}
        for code, price, kinds, protocols in STARTER:
            bc = known[code]
            fid = ctx.loader.add(
                FeeItem,
                clinic_id=info.pk,
                code=code,
                system=bc.system,
                code_version=bc.version,
                price=Decimal(price),
                appointment_kinds=kinds,
                protocols=protocols,
                created_at=ctx.now - dt.timedelta(days=1100),
            )
            items[code] = (fid, Decimal(price), bc.system, bc.version, bc.descriptor or "")
        fees[info.pk] = items
        ctx.audit.add(
            None, ctx.now - dt.timedelta(days=1100), admin, "admin", "create",
            clinic_index=info.index, object_type="billing.fee_item", detail=f"n={len(items)}",
        )  # fmt: skip
    ctx.extra["fees"] = fees


def gen_billing(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    Account, Charge, Payment, Allocation, Adjustment = (
        _m(f"billing.{n}") for n in ("Account", "ChargeLine", "Payment", "Allocation", "Adjustment")
    )
    visits = [v for v in plan.refs.get("completed_visits", []) if v[2] < ctx.now - DAY]
    if not visits:
        return
    info = ctx.clinics[plan.clinic_index]
    fees = ctx.extra["fees"][info.pk]
    desk = info.pick("front_desk", rng)
    ctx.loader.add(Account, clinic_id=info.pk, patient_id=plan.pk)
    dosing_kind = "dosing-esketamine" if plan.pk % 3 == 0 else "dosing-iv"
    lump = rng.random() < 0.2  # pays every few visits instead of at each
    unpaid_tail = rng.choice((0, 0, 0, 1, 2))  # the latest visits not yet paid
    pending: list[tuple[int, Decimal, dt.datetime]] = []

    def pay(at: dt.datetime, method: str) -> None:
        total = sum((amount for _, amount, _ in pending), Decimal(0))
        pid = ctx.loader.add(
            Payment, clinic_id=info.pk, patient_id=plan.pk, kind="payment", method=method, amount=total,
            reference=f"{method[:4].upper()}-{rng.randint(1000, 99999)}", received_on=at.date(),
            created_by_id=desk, created_at=at,
        )  # fmt: skip
        for cid, amount, _ in pending:
            ctx.loader.add(Allocation, payment_id=pid, charge_id=cid, amount=amount, created_at=at)
        ctx.audit.add(plan, at, desk, "front_desk", "create", object_type="billing.payment", object_id=pid)
        pending.clear()

    for n, (aid, kind, start, staff) in enumerate(visits):
        codes = _BILLING_CODES[dosing_kind if kind == "dosing" else kind]
        posted_at = start + DAY
        for code in codes:
            fid, price, system, version, descriptor = fees[code]
            cid = ctx.loader.add(
                Charge, clinic_id=info.pk, patient_id=plan.pk, service_date=start.date(), appointment_id=aid,
                fee_item_id=fid, code=code, system=system, code_version=version, description=descriptor[:400],
                units=1, unit_price=price, amount=price, pos="11", diagnosis_codes=[DX_PRIMARY],
                provider_id=staff, status="posted", created_by_id=desk, created_at=start + 3 * 60 * MIN,
                posted_by_id=desk, posted_at=posted_at, version=2,
            )  # fmt: skip
            pending.append((cid, price, start))
        ctx.audit.add(
            plan, posted_at, desk, "front_desk", "update", object_type="billing.account",
            detail=f"posted={len(codes)}",
        )  # fmt: skip
        if n >= len(visits) - unpaid_tail:
            continue
        if not lump:
            pay(start + 2 * 60 * MIN, "card")
        elif len(pending) >= 4:
            pay(posted_at + rng.randint(3, 20) * DAY, rng.choice(("cheque", "bank_transfer")))
    if pending and lump and unpaid_tail == 0:
        last = pending[-1][2] + rng.randint(3, 20) * DAY
        if last < ctx.now:
            pay(last, "cheque")
    if pending and rng.random() < 0.1:
        cid, amount, at = pending[0]
        on = min(ctx.now, at + 30 * DAY)
        ctx.loader.add(
            Adjustment, clinic_id=info.pk, patient_id=plan.pk, charge_id=cid, kind="write_off",
            amount=min(amount, Decimal("25.00")), reason="Hardship discount (synthetic)", on=on.date(),
            created_by_id=desk, created_at=on,
        )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Secure messages (issue 17): patient threads of portal users with their care team (the patient writes,
# the therapist or prescriber answers, over hours to days), staff-only threads about some patients;
# older threads marked done, recent ones open (some still awaiting an answer); read marks of the
# people who read them. Shapes the staff inbox, the unread counts and the notification bell.
# --------------------------------------------------------------------------------------------------

_SUBJECTS = (
    "Question about my next session",
    "Feeling different since the last dose",
    "Rescheduling",
    "Integration homework",
    "Sleep after the session",
    "Medication question",
)
_STAFF_SUBJECTS = ("Care coordination", "Dose plan review", "Follow-up after the session")


def gen_conversations(ctx: ScaleContext, plan: PatientPlan, rng: random.Random) -> None:
    Thread, Message, ReadMark = (_m(f"conversations.{n}") for n in ("Thread", "Message", "ReadMark"))
    if plan.therapist_id is None or plan.intake_at is None or plan.intake_at >= ctx.now:
        return
    info = ctx.clinics[plan.clinic_index]
    start = plan.intake_at
    end = min(plan.discharged_at or ctx.now, ctx.now)
    span = max(1.0, (end - start).total_seconds())
    threads: list[tuple[str, dt.datetime]] = []
    if plan.user_id is not None:
        count = rng.choice((0, 1, 1, 2, 2, 3, 4)) + (4 if plan.refs.get("bench_patient") else 0)
        threads += [("patient", start + dt.timedelta(seconds=rng.random() * span)) for _ in range(count)]
        if plan.status in ("active", "maintenance") and rng.random() < 0.35:
            threads.append(("patient", ctx.now - dt.timedelta(hours=rng.randint(2, 120))))
    if rng.random() < 0.3:
        threads.append(("staff", start + dt.timedelta(seconds=rng.random() * span)))
    for kind, at in sorted(threads, key=lambda t: t[1]):
        patient_thread = kind == "patient"
        clinician = plan.therapist_id if rng.random() < 0.75 else plan.prescriber_id
        first_author = plan.user_id if patient_thread else plan.prescriber_id
        messages: list[tuple[int, bool, dt.datetime]] = []
        t = at
        for i in range(rng.randint(1, 6)):
            from_patient = patient_thread and i % 2 == 0
            author = first_author if i == 0 else (plan.user_id if from_patient else clinician)
            if author is None or t >= ctx.now:
                break
            messages.append((author, from_patient, t))
            t += dt.timedelta(hours=rng.randint(1, 48), minutes=rng.randint(0, 59))
        if not messages:
            continue
        last_by, last_from_patient, last_at = messages[-1]
        done = last_at < ctx.now - 14 * DAY and rng.random() < 0.9
        awaiting = None
        if patient_thread and last_from_patient and not done:
            awaiting = last_at
        assigned = clinician if rng.random() < 0.5 else None
        tid = ctx.loader.add(
            Thread, clinic_id=info.pk, patient_id=plan.pk, kind=kind,
            subject=rng.choice(_SUBJECTS if patient_thread else _STAFF_SUBJECTS),
            status="done" if done else "open", assigned_to_id=assigned, created_by_id=first_author,
            created_at=at, last_message_at=last_at, last_message_by_id=last_by, awaiting_since=awaiting,
            done_at=last_at + DAY if done else None, done_by_id=clinician if done else None,
        )  # fmt: skip
        for author, from_patient, when in messages:
            mid = ctx.loader.add(
                Message, thread_id=tid, author_id=author, from_patient=from_patient,
                body="Synthetic benchmark message. " * rng.randint(1, 8), created_at=when,
            )  # fmt: skip
            role = Role.THERAPIST if author == plan.therapist_id else Role.PRESCRIBER
            role = Role.PATIENT if from_patient else role
            ctx.audit.add(
                plan, when, author, role, "create", object_type="conversations.message", object_id=mid
            )
        # Who has read how far: the author of the last message; the clinician mostly; the patient mostly;
        # a thread that is done was read by whoever closed it.
        readers: dict[int, dt.datetime] = {last_by: last_at}
        for who, chance in ((clinician, 0.8 if not awaiting else 0.3), (plan.user_id, 0.8)):
            if who is None or (who == plan.user_id and not patient_thread):
                continue
            if done or rng.random() < chance:
                seen = last_at + dt.timedelta(hours=rng.randint(1, 30))
                readers.setdefault(who, min(seen, ctx.now))
        for who, when in readers.items():
            ctx.loader.add(ReadMark, thread_id=tid, user_id=who, read_at=when)


DOMAINS: list[Domain] = [
    Domain("intake", ("intake.Inquiry", "intake.Assessment", "intake.EligibilityDecision"), gen_intake),
    Domain("scheduling", ("scheduling.Appointment",), gen_scheduling),
    Domain(
        "measures",
        ("measures.Episode", "measures.InstrumentResponse", "measures.ItemAnswer", "measures.SafetyAlert"),
        gen_measures,
    ),
    Domain(
        "sessions",
        (
            "kap_sessions.DosingSession",
            "kap_sessions.Observation",
            "kap_sessions.Administration",
            "kap_sessions.SessionTransition",
            "kap_sessions.SessionAlert",
        ),
        gen_sessions,
    ),
    Domain("notes", ("notes.Note", "scheduling.Appointment"), gen_notes),
    Domain(
        "inventory",
        ("inventory.Registration", "inventory.Container", "inventory.LedgerEntry", "inventory.SessionDraw"),
        gen_inventory,
        setup=_inventory_setup,
    ),
    Domain(
        "billing",
        ("billing.FeeItem", "billing.Account", "billing.ChargeLine", "billing.Payment", "billing.Allocation"),
        gen_billing,
        setup=_billing_setup,
    ),
    Domain(
        "conversations",
        ("conversations.Thread", "conversations.Message", "conversations.ReadMark"),
        gen_conversations,
    ),
]
