"""Dosing-session state machine, pre-dose safety gate and discharge rules (pure; no Django).

States: scheduled → checked_in → predose_passed → dosing → monitoring → recovery → discharged, or
aborted (with a reason) from any state before discharge.  Illegal transitions raise
:class:`IllegalTransition` with a sentence.

Gate items follow the pre-session safety check of ref §6.1 ([S6a][S6b][S10][S36]).  Which failed items are
*hard stops* (never overridable) is a design choice documented here, not a published standard: a signed
treatment plan, current consent, a current eligibility decision without an absolute contraindication
(ref §3.5 [S3][S38]) and, for esketamine, REMS enrolment (ref §2.1 [S5][S6c]).  Every other failed item
blocks dosing unless a prescriber overrides it with a written reason (ref §3.5 "documented prescriber
override + rationale"; ref §7 note 4).

Observation clock: it runs from the *end of administration* (the last esketamine device, the IV stop, the
IM injection, the end of the SL hold).  For esketamine the label counts at least 2 hours from the first
device [S2][S4][S6a] ref §2.1; counting from the last device is never shorter.  Recovery (the pre-discharge
phase) starts no earlier than the end of administration plus the protocol's minimum observation time; a
protocol without that minimum refuses with a sentence until the clinic sets it (never a guessed number).

Discharge: the minimum observation time from the end of administration, sedation and dissociation resolved
[S5], final vitals in range [S6a], the protocol's vitals schedule complete up to recovery (each missed check
explained in writing), a full set of vitals and ratings within the clinic's interval before discharge (the
reference gives none: a clinic setting, [S6a] ref §2.7), escort present and no-driving advice given
[S2][S4], clinician signature (ref §2.7).  The minimum observation time cannot be overridden.

Over 600 lines: states, gate, discharge, administration record and hand-off are one pure clinical
specification, reviewed together against docs/clinical-reference.md; each section is read alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from kapclinic.clinical.vitals import (
    DEFAULT_THRESHOLDS,
    AlertThresholds,
    DueItem,
    Reading,
    baseline_within_limits,
    evaluate_reading,
)


class State(StrEnum):
    SCHEDULED = "scheduled"
    CHECKED_IN = "checked_in"
    PREDOSE_PASSED = "predose_passed"
    DOSING = "dosing"
    MONITORING = "monitoring"
    RECOVERY = "recovery"
    DISCHARGED = "discharged"
    ABORTED = "aborted"


STATE_LABELS: dict[State, str] = {
    State.SCHEDULED: "Scheduled",
    State.CHECKED_IN: "Checked in",
    State.PREDOSE_PASSED: "Pre-dose checks passed",
    State.DOSING: "Dosing",
    State.MONITORING: "Monitoring",
    State.RECOVERY: "Recovery",
    State.DISCHARGED: "Discharged",
    State.ABORTED: "Aborted",
}

TERMINAL = frozenset({State.DISCHARGED, State.ABORTED})


class Event(StrEnum):
    CHECK_IN = "check_in"
    PASS_PREDOSE = "pass_predose"
    START_DOSING = "start_dosing"
    START_MONITORING = "start_monitoring"
    START_RECOVERY = "start_recovery"
    DISCHARGE = "discharge"
    ABORT = "abort"


EVENT_LABELS: dict[Event, str] = {
    Event.CHECK_IN: "check the patient in",
    Event.PASS_PREDOSE: "pass the pre-dose checks",
    Event.START_DOSING: "start dosing",
    Event.START_MONITORING: "finish dosing and start monitoring",
    Event.START_RECOVERY: "start recovery",
    Event.DISCHARGE: "discharge the patient",
    Event.ABORT: "abort the session",
}

_TRANSITIONS: dict[Event, tuple[frozenset[State], State]] = {
    Event.CHECK_IN: (frozenset({State.SCHEDULED}), State.CHECKED_IN),
    Event.PASS_PREDOSE: (frozenset({State.CHECKED_IN}), State.PREDOSE_PASSED),
    Event.START_DOSING: (frozenset({State.PREDOSE_PASSED}), State.DOSING),
    Event.START_MONITORING: (frozenset({State.DOSING}), State.MONITORING),
    Event.START_RECOVERY: (frozenset({State.MONITORING}), State.RECOVERY),
    Event.DISCHARGE: (frozenset({State.RECOVERY}), State.DISCHARGED),
    Event.ABORT: (frozenset(State) - TERMINAL, State.ABORTED),
}


class IllegalTransition(ValueError):
    """A transition not allowed from the current state (message is a user-facing sentence)."""


def allowed_events(state: State) -> tuple[Event, ...]:
    return tuple(e for e, (sources, _) in _TRANSITIONS.items() if state in sources)


def next_state(state: State, event: Event, *, reason: str | None = None) -> State:
    """The state after ``event``; raises :class:`IllegalTransition` with a sentence when not allowed."""
    sources, target = _TRANSITIONS[event]
    if state not in sources:
        if state is State.DISCHARGED and event is Event.DISCHARGE:
            raise IllegalTransition("The session has already been discharged; it cannot be discharged twice.")
        if event is Event.START_DOSING and state in (State.DOSING, State.MONITORING, State.RECOVERY):
            raise IllegalTransition("Dosing has already started for this session; it cannot be dosed twice.")
        if state in TERMINAL:
            raise IllegalTransition(
                f"The session is {STATE_LABELS[state].lower()}; no further changes are possible, so you "
                f"cannot {EVENT_LABELS[event]}."
            )
        allowed = ", ".join(EVENT_LABELS[e] for e in allowed_events(state))
        raise IllegalTransition(
            f"You cannot {EVENT_LABELS[event]} while the session is {STATE_LABELS[state].lower()}; "
            f"from here you can {allowed}."
        )
    if event is Event.ABORT and not (reason or "").strip():
        raise IllegalTransition("Reason is required: a session can only be aborted with a written reason.")
    return target


# --------------------------------------------------------------------------------------------------
# Pre-dose safety gate
# --------------------------------------------------------------------------------------------------

GATE_LABELS: dict[str, str] = {
    "signed_plan": "Signed treatment plan",
    "consent_current": "Current consent",
    "eligibility_current": "Current eligibility decision",
    "phq9_done": "PHQ-9 for this session",
    "fasting": "Fasting time",
    "escort_named": "Escort / driver home named",
    "medication_changes_reviewed": "Medication changes since last session reviewed",
    "pregnancy_status": "Pregnancy status",
    "intention_noted": "Intention for the session noted",
    "baseline_vitals": "Baseline vitals within the protocol's limits",
    "rems_enrolled": "Patient enrolled in the Spravato REMS",
    "nasal_steroid_timing": "Nasal corticosteroid / decongestant at least 1 hour before",
    "weight_today": "Today's weight (for the mg/kg dose)",
}

HARD_STOPS = frozenset({"signed_plan", "consent_current", "eligibility_current", "rems_enrolled"})


@dataclass(frozen=True)
class GateCheck:
    """One evaluated gate item: ``passed`` False with ``detail`` explaining why."""

    key: str
    passed: bool
    detail: str = ""
    waived_reason: str | None = None  # e.g. PHQ-9 waived with a reason (counts as passed)
    flag: str | None = None  # something the gate must show prominently, e.g. "item9_positive"

    @property
    def label(self) -> str:
        return GATE_LABELS.get(self.key, self.key)

    @property
    def hard_stop(self) -> bool:
        return self.key in HARD_STOPS


@dataclass(frozen=True)
class GateItemResult:
    check: GateCheck
    status: str  # "pass" | "waived" | "overridden" | "blocked" | "hard_stop"
    override_reason: str | None = None


@dataclass(frozen=True)
class GateResult:
    items: tuple[GateItemResult, ...]

    @property
    def passed(self) -> bool:
        return all(i.status in ("pass", "waived", "overridden") for i in self.items)

    @property
    def blocking(self) -> tuple[str, ...]:
        out = []
        for i in self.items:
            if i.status == "hard_stop":
                out.append(f"{i.check.label}: {i.check.detail} This is a hard stop and cannot be overridden.")
            elif i.status == "blocked":
                out.append(
                    f"{i.check.label}: {i.check.detail} Dosing is blocked unless a prescriber overrides it "
                    "with a written reason."
                )
        return tuple(out)

    @property
    def overridable_failures(self) -> tuple[str, ...]:
        return tuple(i.check.key for i in self.items if i.status == "blocked")


def evaluate_gate(
    checks: Iterable[GateCheck],
    overrides: Mapping[str, str] | None = None,
    *,
    required: Sequence[str] | None = None,
) -> GateResult:
    """Combine evaluated checks with prescriber overrides (``{key: written reason}``).

    ``required`` lists the item keys the protocol requires; a required item with no check is a failure.
    """
    overrides = overrides or {}
    by_key = {c.key: c for c in checks}
    for key in required or ():
        if key not in by_key:
            by_key[key] = GateCheck(key, False, "This check has not been completed.")
    results = []
    for key, c in by_key.items():
        if c.passed:
            results.append(GateItemResult(c, "waived" if c.waived_reason else "pass"))
            continue
        reason = (overrides.get(key) or "").strip()
        if c.hard_stop:
            results.append(GateItemResult(c, "hard_stop"))
        elif reason:
            results.append(GateItemResult(c, "overridden", reason))
        else:
            results.append(GateItemResult(c, "blocked"))
    return GateResult(tuple(results))


# --- PHQ-9 for this session, read from the measures app (ref §6.1 "interim suicidality check", §6.3
# "before each dosing session: PHQ-9 ... item-9 review", §3.9 item 9 handling).

PHQ9_WINDOW_SAME_DAY = "same_day"
PHQ9_WINDOW_SINCE_PREVIOUS = "since_previous_session"
PHQ9_WINDOW_MODES = (PHQ9_WINDOW_SAME_DAY, PHQ9_WINDOW_SINCE_PREVIOUS)


@dataclass(frozen=True)
class Phq9Window:
    start: datetime
    end: datetime
    description: str  # "today", "since the previous dosing session (...)", ...


def phq9_window(
    mode: str,
    *,
    now: datetime,
    day_start: datetime,
    previous_dose_at: datetime | None,
    max_hours: int,
) -> Phq9Window:
    """Which PHQ-9 responses count as "done for this session".

    ``same_day``: completed since ``day_start`` (local midnight of the session day).
    ``since_previous_session``: completed after the previous session's first dose and at most
    ``max_hours`` before now (the cap also applies to a first session).  Both are clinic settings; the
    window is an operational choice, not a clinical number."""
    if mode not in PHQ9_WINDOW_MODES:
        raise ValueError(f"Unknown PHQ-9 window {mode!r}; expected one of {', '.join(PHQ9_WINDOW_MODES)}.")
    if max_hours <= 0:
        raise ValueError("The PHQ-9 window must be at least 1 hour.")
    if mode == PHQ9_WINDOW_SAME_DAY:
        return Phq9Window(day_start, now, "today")
    cap = now - timedelta(hours=max_hours)
    if previous_dose_at is not None and previous_dose_at > cap:
        return Phq9Window(
            previous_dose_at,
            now,
            f"since the previous dosing session ({previous_dose_at:%Y-%m-%d %H:%M})",
        )
    return Phq9Window(cap, now, f"in the last {max_hours} hours")


@dataclass(frozen=True)
class Phq9Evidence:
    """The latest PHQ-9 response inside the window."""

    completed_at: datetime
    total: int
    item9: int | None
    item9_urgent: bool
    acknowledged_action: str = ""  # how the alert of this response was acknowledged, if it had one


def check_phq9_response(
    evidence: Phq9Evidence | None,
    waiver_reason: str | None,
    window: Phq9Window,
    *,
    open_safety_alerts: int = 0,
) -> GateCheck:
    """PHQ-9 done for this session (or waived with a reason); item 9 shown and handled.

    Design choice (ref §3.9 recommends same-day clinician review of any item 9 > 0): an unacknowledged
    safety alert blocks the item until a clinician records the action taken, or a prescriber overrides it
    with a written reason.  A waiver never covers an open safety alert."""
    reason = (waiver_reason or "").strip()
    open_alerts = max(open_safety_alerts, 0)
    alert_text = (
        f"{open_alerts} PHQ-9 item 9 safety alert(s) for this patient are not yet acknowledged: a "
        "clinician must review them and record the action taken before dosing (ref §3.9)."
    )
    if evidence is None:
        if open_alerts:
            return GateCheck(
                "phq9_done", False, f"No PHQ-9 has been completed {window.description}. {alert_text}"
            )
        if reason:
            return GateCheck(
                "phq9_done", True, f"No PHQ-9 completed {window.description}; waived.", waived_reason=reason
            )
        return GateCheck(
            "phq9_done",
            False,
            f"No PHQ-9 has been completed {window.description} and no waiver reason is given.",
        )
    done = f"PHQ-9 completed {evidence.completed_at:%Y-%m-%d %H:%M}, total {evidence.total}."
    flag = None
    if evidence.item9 is not None and evidence.item9 > 0:
        flag = "item9_urgent" if evidence.item9_urgent else "item9_positive"
        urgency = " (urgent)" if evidence.item9_urgent else ""
        done += f" Item 9 (thoughts of death or self-harm) answered {evidence.item9}{urgency}."
        if evidence.acknowledged_action and not open_alerts:
            done += f" Safety alert acknowledged: {evidence.acknowledged_action}."
    elif evidence.item9 == 0:
        done += " Item 9: 0 (a 0 does not rule out risk; ref §3.9)."
    if open_alerts:
        return GateCheck("phq9_done", False, f"{done} {alert_text}", flag=flag or "item9_positive")
    return GateCheck("phq9_done", True, done, flag=flag)


def check_fasting(
    *,
    last_food_at: datetime | None,
    last_liquid_at: datetime | None,
    now: datetime,
    food_minutes: int | None,
    liquids_minutes: int | None,
) -> GateCheck:
    """No food for ``food_minutes`` and no liquids for ``liquids_minutes`` before dosing ([S10] ref §1.3 for
    esketamine: 120 / 30).  ``None`` minutes: the clinic has not set a fasting time for this protocol."""
    problems = []
    if food_minutes is None and liquids_minutes is None:
        return GateCheck("fasting", True, "The protocol sets no fasting time.")
    if food_minutes is not None:
        if last_food_at is None:
            problems.append("the time of the last food was not recorded")
        elif now - last_food_at < timedelta(minutes=food_minutes):
            ago = int((now - last_food_at).total_seconds() // 60)
            problems.append(f"last food was {ago} min ago, the protocol requires {food_minutes} min")
    if liquids_minutes is not None:
        if last_liquid_at is None:
            problems.append("the time of the last liquids was not recorded")
        elif now - last_liquid_at < timedelta(minutes=liquids_minutes):
            ago = int((now - last_liquid_at).total_seconds() // 60)
            problems.append(f"last liquids were {ago} min ago, the protocol requires {liquids_minutes} min")
    if problems:
        return GateCheck("fasting", False, _sentence("; ".join(problems)))
    return GateCheck("fasting", True, "Fasting times met.")


# [S8b][S38c] ref §3.6: CNS depressants add sedation/respiratory risk; stimulants and MAOIs raise BP.
FLAGGED_MEDICATION_CLASSES: dict[str, str] = {
    "benzodiazepine": "additive sedation and respiratory risk; monitor closely ([S8b] ref §3.6)",
    "sedative_hypnotic": "additive sedation and respiratory risk; monitor closely ([S8b] ref §3.6)",
    "opioid": "additive sedation and respiratory risk; monitor closely ([S8b] ref §3.6)",
    "alcohol": "additive sedation and respiratory risk; monitor closely ([S8b] ref §3.6)",
    "stimulant": "additive blood-pressure rise; monitor BP ([S8b] ref §3.6)",
    "maoi": "blood-pressure rise; monitor BP ([S8b] ref §3.6)",
}

MEDICATION_CLASS_LABELS: dict[str, str] = {
    "benzodiazepine": "Benzodiazepine",
    "sedative_hypnotic": "Non-benzodiazepine sedative hypnotic",
    "opioid": "Opioid",
    "alcohol": "Alcohol",
    "stimulant": "Psychostimulant",
    "maoi": "MAOI",
}


def check_medication_changes(reviewed: bool, flagged_classes: Iterable[str]) -> GateCheck:
    flagged = sorted(set(flagged_classes))
    unknown = [c for c in flagged if c not in FLAGGED_MEDICATION_CLASSES]
    if unknown:
        raise ValueError(f"Unknown medication class {unknown[0]!r}.")
    if not reviewed:
        return GateCheck(
            "medication_changes_reviewed",
            False,
            "Medication changes since the last session have not been reviewed.",
        )
    if flagged:
        notes = "; ".join(f"{MEDICATION_CLASS_LABELS[c]}: {FLAGGED_MEDICATION_CLASSES[c]}" for c in flagged)
        return GateCheck("medication_changes_reviewed", True, f"Reviewed. Flagged: {notes}.")
    return GateCheck("medication_changes_reviewed", True, "Reviewed; no flagged medication classes.")


def check_baseline_vitals(
    reading: Reading | None, thresholds: AlertThresholds = DEFAULT_THRESHOLDS
) -> GateCheck:
    if reading is None:
        return GateCheck("baseline_vitals", False, "Baseline vitals have not been recorded.")
    problems = baseline_within_limits(reading, thresholds)
    if problems:
        src = thresholds.predose_sbp_above.source
        return GateCheck("baseline_vitals", False, " ".join(problems) + f" (consider delaying; {src})")
    return GateCheck("baseline_vitals", True, "Baseline vitals within the protocol's limits.")


def check_text(key: str, value: str | None, missing: str) -> GateCheck:
    if (value or "").strip():
        return GateCheck(key, True, "Recorded.")
    return GateCheck(key, False, missing)


def check_flag(key: str, ok: bool | None, ok_text: str, fail_text: str) -> GateCheck:
    return GateCheck(key, bool(ok), ok_text if ok else fail_text)


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


# --------------------------------------------------------------------------------------------------
# Discharge
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DischargeInput:
    first_dose_at: datetime | None
    now: datetime
    minimum_minutes: int | None
    last_moaas: int | None
    last_dissociation: int | None
    final_vitals: Reading | None
    baseline: Reading | None
    escort_present: bool
    escort_name: str
    no_driving_advice_given: bool
    clinician_signed: bool
    open_alerts: int = 0
    thresholds: AlertThresholds = DEFAULT_THRESHOLDS
    # The observation clock starts at the end of administration (``first_dose_at`` is kept as the
    # field's name for callers; the service passes the end of administration).
    missing_checks: tuple[str, ...] = ()
    final_set: tuple[str, ...] = ()


@dataclass(frozen=True)
class DischargeDecision:
    allowed: bool
    reasons: tuple[str, ...]
    minutes_observed: int | None
    earliest_at: datetime | None


def minutes_between(start: datetime, end: datetime) -> int:
    """Whole minutes elapsed (floored), never negative."""
    return max(0, int((end - start).total_seconds() // 60))


def evaluate_discharge(d: DischargeInput) -> DischargeDecision:
    """Every reason discharge is refused (empty = allowed).  Nothing here can be overridden."""
    reasons: list[str] = []
    observed: int | None = None
    earliest: datetime | None = None
    if d.first_dose_at is None:
        reasons.append(
            "End of administration: it has not been recorded, so the observation time cannot start."
        )
    elif d.minimum_minutes is None:
        reasons.append(
            "Minimum observation time: the clinic has not set one for this protocol, so discharge is refused "
            "until it does."
        )
    else:
        observed = minutes_between(d.first_dose_at, d.now)
        earliest = d.first_dose_at + timedelta(minutes=d.minimum_minutes)
        if d.now < earliest:
            reasons.append(
                f"Minimum observation time: {observed} of {d.minimum_minutes} minutes since the end of "
                f"administration have passed; discharge is possible from {earliest:%H:%M}."
            )
    if d.last_moaas is None:
        reasons.append("Sedation: no MOAA/S rating has been recorded.")
    elif d.last_moaas < 5:
        reasons.append(
            f"Sedation: the latest MOAA/S is {d.last_moaas}; it must be 5 (alert) before discharge."
        )
    if d.last_dissociation is None:
        reasons.append("Dissociation: no dissociation rating has been recorded.")
    elif d.last_dissociation > 0:
        reasons.append(
            f"Dissociation: the latest rating is {d.last_dissociation}; "
            "it must be 0 (resolved) before discharge."
        )
    if d.final_vitals is None:
        reasons.append("Final vitals: record a set of vitals during recovery before discharge.")
    else:
        alerts = evaluate_reading(d.final_vitals, baseline=d.baseline, phase="intra", thresholds=d.thresholds)
        if alerts:
            reasons.append("Final vitals: " + " ".join(a.message for a in alerts) + " They must be in range.")
        if d.final_vitals.sbp is None or d.final_vitals.spo2 is None:
            reasons.append("Final vitals: blood pressure and SpO2 are both required.")
    reasons.extend(d.missing_checks)
    reasons.extend(d.final_set)
    if d.open_alerts:
        reasons.append(f"Alerts: {d.open_alerts} alert(s) have not been acknowledged with an action.")
    if not d.escort_present or not d.escort_name.strip():
        reasons.append("Escort: the named escort must be present to take the patient home.")
    if not d.no_driving_advice_given:
        reasons.append("No-driving advice: confirm the patient was told not to drive until the next day.")
    if not d.clinician_signed:
        reasons.append("Signature: a clinician must sign the discharge.")
    return DischargeDecision(not reasons, tuple(reasons), observed, earliest)


# --------------------------------------------------------------------------------------------------
# Administration record: what was actually given, per route (ref §6.1 "Drug administration": number of
# devices and spray times for Spravato with 5-minute spacing, infusion start/stop and rate for IV,
# lozenge hold time and spit/swallow for SL)
# --------------------------------------------------------------------------------------------------

#: Esketamine: each device is 28 mg as two sprays (one per nostril), the patient self-administers under
#: direct observation, and the next device follows only after 5 minutes ([S7] ref §1.3). The number of
#: minutes comes from the protocol (``dose.device_spacing_minutes``, cited there); this is the citation
#: quoted in refusals.
DEVICE_SPACING_SOURCE = "[S7] ref §1.3"

SL_OUTCOMES: dict[str, str] = {"spat": "Spat out", "swallowed": "Swallowed"}


def _clock_text(at: datetime, reference: datetime | None = None) -> str:
    """``14:05:00``, or ``2 Mar 14:05:00`` when ``at`` falls on another day than ``reference``."""
    if reference is not None and at.date() != reference.date():
        return f"{at.day} {at:%b %H:%M:%S}"
    return f"{at:%H:%M:%S}"


def _gap_text(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    minutes, rest = divmod(abs(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def check_entered_time(label: str, at: datetime, *, not_before: datetime | None, now: datetime) -> list[str]:
    """A time typed by staff (it may be back-dated within the session) is refused with a sentence when it
    lies in the future or before the patient checked in; nothing is moved or clamped."""
    problems: list[str] = []
    if at > now:
        problems.append(
            f"{label}: {_clock_text(at, now)} is in the future (it is now {_clock_text(now)}); "
            "enter the time it happened."
        )
    if not_before is not None and at < not_before:
        problems.append(
            f"{label}: {_clock_text(at, not_before)} is before the patient checked in at "
            f"{_clock_text(not_before)}; enter a time within this session."
        )
    return problems


def check_device(
    number: int, at: datetime, *, ordered: int, previous_at: datetime | None, spacing_minutes: int
) -> list[str]:
    """Device ``number`` (1-based, in order of use) at ``at``: refused beyond the devices ordered, before
    the previous device, or less than ``spacing_minutes`` after it (exactly the spacing is accepted)."""
    if ordered < 1:
        return ["Devices: no nasal devices are part of the dose order, so none can be recorded."]
    if number > ordered:
        return [
            f"Devices: all {ordered} ordered device(s) are already recorded; a device beyond the order "
            "cannot be recorded."
        ]
    if previous_at is None:
        return []
    gap = at - previous_at
    if gap < timedelta(0):
        return [
            f"Device {number} at {_clock_text(at, previous_at)} would be before device {number - 1} "
            f"({_clock_text(previous_at)}); devices are recorded in the order they are used."
        ]
    spacing = timedelta(minutes=spacing_minutes)
    if gap < spacing:
        return [
            f"Device {number} at {_clock_text(at)} is only {_gap_text(gap)} after device {number - 1} "
            f"({_clock_text(previous_at)}); wait {spacing_minutes} minutes between devices "
            f"({DEVICE_SPACING_SOURCE}), so device {number} can be used from "
            f"{_clock_text(previous_at + spacing)}."
        ]
    return []


def check_infusion_stop(
    stopped_at: datetime, *, started_at: datetime | None, actual_rate_ml_per_h: Decimal | None
) -> list[str]:
    """An IV infusion stops after it started; an actual rate, when given, is above 0 mL/h."""
    problems: list[str] = []
    if started_at is None:
        problems.append("Infusion: it has not been started, so it cannot be stopped.")
    elif stopped_at <= started_at:
        problems.append(
            f"Infusion stop at {_clock_text(stopped_at, started_at)} is not after its start at "
            f"{_clock_text(started_at)}; enter the time the infusion ended."
        )
    if actual_rate_ml_per_h is not None and actual_rate_ml_per_h <= 0:
        problems.append("Actual rate: enter the pump rate in mL/h (above 0), or leave it empty if unchanged.")
    return problems


def check_lozenge(hold_minutes: int, outcome: str, *, minutes_since_first_dose: int) -> list[str]:
    """A sublingual lozenge's hold time (minutes) cannot be negative or longer than the time since the
    dose started, and the record says whether the rest was spat out or swallowed."""
    problems: list[str] = []
    if hold_minutes < 0:
        problems.append("Hold time: enter the minutes the lozenge was held (0 or more).")
    elif hold_minutes > minutes_since_first_dose:
        problems.append(
            f"Hold time: {hold_minutes} min is longer than the {minutes_since_first_dose} min since dosing "
            "started; enter the time it was actually held."
        )
    if outcome not in SL_OUTCOMES:
        problems.append("Spat or swallowed: say whether the patient spat out or swallowed the lozenge.")
    return problems


@dataclass(frozen=True)
class AdministrationRecord:
    """What has been recorded of the dose given, for the "dosing complete" check."""

    form: str  # the protocol's dose form: nasal_device | vial_iv | vial_im | lozenge
    devices_ordered: int = 0
    devices_recorded: int = 0
    infusion_stopped: bool = False
    lozenge_recorded: bool = False
    partial_reason: str = ""

    @property
    def partial(self) -> bool:
        return self.form == "nasal_device" and self.devices_recorded < self.devices_ordered


def dosing_completion_gaps(r: AdministrationRecord) -> tuple[str, ...]:
    """Why dosing cannot be marked complete yet (empty = it can). Esketamine: every ordered device is
    recorded, or a written reason documents a partial dose (e.g. the patient declined or vomited). IV:
    the infusion stop is recorded. SL: hold time and spat/swallowed are recorded. IM: the injection time
    is the first-dose time, nothing more is needed."""
    gaps: list[str] = []
    if r.partial and not r.partial_reason.strip():
        gaps.append(
            f"Devices: {r.devices_recorded} of {r.devices_ordered} ordered devices are recorded; record "
            "the others as they are used, or give the reason for a partial dose (for example, the patient "
            "declined or vomited)."
        )
    if r.form == "vial_iv" and not r.infusion_stopped:
        gaps.append("Infusion: record the time the infusion stopped (and the actual rate if it changed).")
    if r.form == "lozenge" and not r.lozenge_recorded:
        gaps.append("Lozenge: record the hold time and whether it was spat out or swallowed.")
    return tuple(gaps)


# --------------------------------------------------------------------------------------------------
# Hand-off after administration: the observation clock, recovery start and the pre-discharge checks
# --------------------------------------------------------------------------------------------------


def administration_end(
    form: str,
    *,
    administered_at: datetime | None,
    last_device_at: datetime | None = None,
    infusion_stopped_at: datetime | None = None,
    hold_minutes: int | None = None,
) -> datetime | None:
    """When administration ended, the start of the observation clock (None: not recorded yet).

    Esketamine: the last device used (ref §1.3); IV: the recorded infusion stop; IM: the injection; SL:
    the start plus the recorded hold time."""
    if administered_at is None:
        return None
    if form == "nasal_device":
        return max(administered_at, last_device_at) if last_device_at is not None else administered_at
    if form == "vial_iv":
        return infusion_stopped_at
    if form == "lozenge":
        return None if hold_minutes is None else administered_at + timedelta(minutes=hold_minutes)
    return administered_at


def recovery_start_problems(
    *, ended_at: datetime | None, now: datetime, minimum_minutes: int | None
) -> tuple[str, ...]:
    """Why recovery cannot start yet (empty = it can): no earlier than the end of administration plus
    the protocol's minimum observation time; a protocol without that minimum is refused, never guessed."""
    if ended_at is None:
        return (
            "Recovery: the end of administration has not been recorded, so the observation clock has not "
            "started.",
        )
    if minimum_minutes is None:
        return (
            "Recovery: the clinic has not set a minimum observation time for this protocol, so recovery "
            "cannot start; a prescriber sets it on the clinic settings page.",
        )
    earliest = ended_at + timedelta(minutes=minimum_minutes)
    if now < earliest:
        observed = minutes_between(ended_at, now)
        return (
            f"Recovery: {observed} of the protocol's {minimum_minutes} minutes of observation since the end "
            f"of administration ({_clock_text(ended_at, now)}) have passed; recovery can start from "
            f"{_clock_text(earliest, now)}.",
        )
    return ()


def missing_scheduled_checks(
    items: Sequence[DueItem],
    *,
    dose_start: datetime,
    until: datetime,
    explained: Mapping[int, str],
) -> tuple[str, ...]:
    """The protocol's timed vitals checks due before ``until`` (recovery start, or now) that were not
    done and carry no written explanation, as one sentence each. ``explained`` maps a check's minutes
    after the dose start to the nurse's explanation; a blank explanation does not count."""
    out: list[str] = []
    for item in items:
        if item.due_at is None or item.status == "done" or item.due_at >= until:
            continue
        offset = int((item.due_at - dose_start).total_seconds() // 60)
        if (explained.get(offset) or "").strip():
            continue
        out.append(
            f"Vitals schedule: the {item.label} check (due {_clock_text(item.due_at, until)}) was not "
            "done; record why it was missed before discharge."
        )
    return tuple(out)


#: The ratings a full set includes besides the vitals (ref §2.4, §2.5).
FULL_SET_RATINGS: tuple[tuple[str, str], ...] = (("moaas", "MOAA/S"), ("dissociation", "dissociation"))


def final_set_problems(
    *,
    now: datetime,
    within_minutes: int | None,
    full_vitals_at: datetime | None,
    ratings_at: Mapping[str, datetime | None],
    measures_label: str,
) -> tuple[str, ...]:
    """A full set of vitals (every measure the protocol lists) and both ratings, each taken no more
    than ``within_minutes`` before discharge. The reference gives no interval ([S6a] ref §2.7 asks only
    for vital signs in range before the session ends): None means the clinic has not set it. A rating
    never recorded is left to the sedation and dissociation rules of ``evaluate_discharge``."""
    if within_minutes is None:
        return (
            "Final full set: the clinic has not set how recent the last full set of vitals and ratings "
            "must be before discharge, so discharge is refused until a prescriber sets it on the clinic "
            "settings page.",
        )
    limit = timedelta(minutes=within_minutes)
    out: list[str] = []
    parts: list[tuple[str, datetime | None]] = [(f"full set of vitals ({measures_label})", full_vitals_at)]
    parts += [(f"{label} rating", ratings_at.get(key)) for key, label in FULL_SET_RATINGS]
    for label, at in parts:
        if at is None:
            if label.endswith("rating"):
                continue  # the sedation and dissociation rules already refuse a missing rating
            out.append(f"Final full set: no {label} has been recorded.")
        elif now - at > limit:
            out.append(
                f"Final full set: the last {label} was taken at {_clock_text(at, now)}, "
                f"{minutes_between(at, now)} minutes ago; the clinic requires one within {within_minutes} "
                "minutes before discharge, so record it again."
            )
    return tuple(out)
