"""Vital signs: plausibility (entry-error refusal), alert rules and due-reminders (pure; no Django).

Clinical defaults and their sources (docs/clinical-reference.md; `ref §n` = its section n):

* Pre-dose BP: consider delaying treatment if BP > 140/90 mmHg [S9] ref §2.2 (esketamine, MPR summary;
  exact label sentence UNCONFIRMED); an infusion clinic declines to dose above 140/90 [S16] ref §2.2.
* Large rise from baseline: >= 40 mmHg systolic and/or >= 25 mmHg diastolic [S3] ref §2.2.
* SpO2 < 93 % was the desaturation threshold reported in the esketamine phase 3 data [S11a] ref §2.6.
* MOAA/S 0 (no response to painful trapezius squeeze) is loss of consciousness [S2][S3][S40] ref §2.4.
* LOINC codes and UCUM units [S65][S65b] ref §5.1.

The reference does not confirm any intra-session absolute BP stop threshold, nor HR or RR thresholds
(ref §2.2 "Do not hard-code a stop threshold"; ref §8), so those rules exist but have **no default**: they
are off until the clinic sets them, and the UI says so.

Plausibility bounds are *engineering* entry-error limits (not clinical thresholds and not from the
reference): they only catch typos such as BP 300/20, SpO2 101 or HR 0.  A clinic may widen or narrow them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Literal


class Vital(Enum):
    SBP = "sbp"
    DBP = "dbp"
    HR = "hr"
    RR = "rr"
    SPO2 = "spo2"


@dataclass(frozen=True)
class VitalCode:
    loinc: str
    display: str
    ucum: str
    label: str


# [S65][S65b] ref §5.1
LOINC: dict[Vital, VitalCode] = {
    Vital.SBP: VitalCode("8480-6", "Systolic blood pressure", "mm[Hg]", "Systolic BP"),
    Vital.DBP: VitalCode("8462-4", "Diastolic blood pressure", "mm[Hg]", "Diastolic BP"),
    Vital.HR: VitalCode("8867-4", "Heart rate", "/min", "Heart rate"),
    Vital.RR: VitalCode("9279-1", "Respiratory rate", "/min", "Respiratory rate"),
    Vital.SPO2: VitalCode("59408-5", "Oxygen saturation by pulse oximetry", "%", "SpO2"),
}
# Systolic and diastolic are served as the components of one blood-pressure panel Observation [S65] ref §5.1
BP_PANEL = VitalCode("85354-9", "Blood pressure panel", "", "Blood pressure")
BODY_WEIGHT = VitalCode("29463-7", "Body weight", "kg", "Weight")
BODY_HEIGHT = VitalCode("8302-2", "Body height", "cm", "Height")


@dataclass(frozen=True)
class Reading:
    """One set of vitals taken together; any field may be missing."""

    sbp: int | None = None
    dbp: int | None = None
    hr: int | None = None
    rr: int | None = None
    spo2: int | None = None

    def get(self, vital: Vital) -> int | None:
        value: int | None = getattr(self, vital.value)
        return value

    def is_empty(self) -> bool:
        return all(self.get(v) is None for v in Vital)


# --------------------------------------------------------------------------------------------------
# Plausibility (entry errors)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bounds:
    low: int
    high: int


@dataclass(frozen=True)
class PlausibilityBounds:
    """Inclusive entry-error bounds.  ENGINEERING defaults (not clinical, not from the reference)."""

    sbp: Bounds = Bounds(50, 260)
    dbp: Bounds = Bounds(20, 160)
    hr: Bounds = Bounds(20, 250)
    rr: Bounds = Bounds(4, 60)
    spo2: Bounds = Bounds(50, 100)  # a percentage can never exceed 100
    min_pulse_pressure: int = 10  # systolic must exceed diastolic by at least this much

    def for_vital(self, vital: Vital) -> Bounds:
        b: Bounds = getattr(self, vital.value)
        return b


DEFAULT_PLAUSIBILITY = PlausibilityBounds()


@dataclass(frozen=True)
class EntryError:
    field: str
    message: str


def check_plausible(
    reading: Reading, bounds: PlausibilityBounds = DEFAULT_PLAUSIBILITY
) -> tuple[EntryError, ...]:
    """Entry errors in ``reading`` as sentences naming the field and the rule; empty when plausible."""
    errors: list[EntryError] = []
    if reading.is_empty():
        return (EntryError("__all__", "Enter at least one vital sign."),)
    for vital in Vital:
        value = reading.get(vital)
        if value is None:
            continue
        code = LOINC[vital]
        b = bounds.for_vital(vital)
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(EntryError(vital.value, f"{code.label} must be a whole number."))
        elif value < b.low or value > b.high:
            errors.append(
                EntryError(
                    vital.value,
                    f"{code.label} of {value} {_unit(code)} is outside the plausible range "
                    f"{b.low}–{b.high} {_unit(code)}; check the reading and re-enter it.",
                )
            )
    if (reading.sbp is None) != (reading.dbp is None):
        missing = "dbp" if reading.dbp is None else "sbp"
        errors.append(EntryError(missing, "Blood pressure needs both systolic and diastolic values."))
    if (
        reading.sbp is not None
        and reading.dbp is not None
        and not any(e.field in ("sbp", "dbp") for e in errors)
        and reading.sbp - reading.dbp < bounds.min_pulse_pressure
    ):
        errors.append(
            EntryError(
                "dbp",
                f"Diastolic BP {reading.dbp} must be at least {bounds.min_pulse_pressure} mmHg below "
                f"systolic BP {reading.sbp}; check the reading and re-enter it.",
            )
        )
    return tuple(errors)


def _unit(code: VitalCode) -> str:
    return {"mm[Hg]": "mmHg", "/min": "/min", "%": "%"}.get(code.ucum, code.ucum)


def check_moaas(score: int) -> str | None:
    """MOAA/S is 0-5 [S40] ref §2.4."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 5:
        return f"MOAA/S score must be a whole number from 0 to 5 (got {score})."
    return None


def check_dissociation(score: int) -> str | None:
    """Clinician dissociation rating 0-4 (clinic anchors; not CADSS text, ref §2.5)."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 4:
        return f"Dissociation rating must be a whole number from 0 to 4 (got {score})."
    return None


# Our own anchors (plain-language clinician rating; deliberately not CADSS wording, ref §2.5).
DISSOCIATION_ANCHORS: dict[int, str] = {
    0: "None: oriented, no altered perception observed or reported",
    1: "Mild: reports subtle changes; converses normally",
    2: "Moderate: clear altered perception; answers questions with some delay",
    3: "Marked: largely absorbed in the experience; brief answers only",
    4: "Severe: not able to engage verbally; needs close observation",
}

# MOAA/S levels, paraphrased [S40] ref §2.4
MOAAS_LEVELS: dict[int, str] = {
    5: "Responds promptly to name in a normal voice",
    4: "Sluggish response to name in a normal voice",
    3: "Responds only when name is said loudly and/or repeatedly",
    2: "Responds only to mild prodding or shaking",
    1: "Responds only to a painful trapezius squeeze",
    0: "No response to a painful trapezius squeeze",
}


# --------------------------------------------------------------------------------------------------
# Alert thresholds (clinic-configurable; cited defaults)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threshold:
    """A configurable threshold; ``value`` None means the clinic has not set it (rule off)."""

    value: int | None
    source: str
    note: str = ""


_NO_DEFAULT = "clinic setting (the reference gives no number)"


@dataclass(frozen=True)
class AlertThresholds:
    predose_sbp_above: Threshold = Threshold(140, "[S9][S16] ref §2.2")
    predose_dbp_above: Threshold = Threshold(90, "[S9][S16] ref §2.2")
    sbp_rise_at_least: Threshold = Threshold(40, "[S3] ref §2.2")
    dbp_rise_at_least: Threshold = Threshold(25, "[S3] ref §2.2")
    spo2_below: Threshold = Threshold(93, "[S11a] ref §2.6")
    sbp_above: Threshold = Threshold(
        None, _NO_DEFAULT, "No intra-session stop threshold is confirmed (ref §2.2)."
    )
    dbp_above: Threshold = Threshold(
        None, _NO_DEFAULT, "No intra-session stop threshold is confirmed (ref §2.2)."
    )
    hr_above: Threshold = Threshold(None, _NO_DEFAULT)
    hr_below: Threshold = Threshold(None, _NO_DEFAULT)
    rr_above: Threshold = Threshold(None, _NO_DEFAULT)
    rr_below: Threshold = Threshold(None, _NO_DEFAULT)
    moaas_at_or_below: Threshold = Threshold(0, "[S2][S3] ref §2.4 (MOAA/S 0 = loss of consciousness)")

    def with_values(self, **values: int | None) -> AlertThresholds:
        """Clinic override: ``with_values(hr_above=120)`` keeps the field's note, marks it a clinic value."""
        names = {f.name for f in fields(self)}
        changes: dict[str, Threshold] = {}
        for name, value in values.items():
            if name not in names:
                raise KeyError(f"Unknown threshold {name!r}.")
            changes[name] = Threshold(value, "clinic setting", getattr(self, name).source)
        return replace(self, **changes)

    def items(self) -> tuple[tuple[str, Threshold], ...]:
        return tuple((f.name, getattr(self, f.name)) for f in fields(self))


DEFAULT_THRESHOLDS = AlertThresholds()

Severity = Literal["warning", "critical"]
Phase = Literal["pre_dose", "intra"]


@dataclass(frozen=True)
class Alert:
    rule: str
    vital: str
    value: int
    threshold: int
    severity: Severity
    message: str
    source: str


def evaluate_reading(
    reading: Reading,
    *,
    baseline: Reading | None = None,
    phase: Phase = "intra",
    thresholds: AlertThresholds = DEFAULT_THRESHOLDS,
) -> tuple[Alert, ...]:
    """Alerts for one plausible reading.  Absolute rules, plus rise-from-baseline rules during the session."""
    t = thresholds
    alerts: list[Alert] = []

    def above(rule: str, vital: Vital, th: Threshold, label: str, severity: Severity = "warning") -> None:
        v = reading.get(vital)
        if v is not None and th.value is not None and v > th.value:
            alerts.append(
                Alert(
                    rule, vital.value, v, th.value, severity, f"{label} {v} is above {th.value}.", th.source
                )
            )

    def below(rule: str, vital: Vital, th: Threshold, label: str, severity: Severity = "warning") -> None:
        v = reading.get(vital)
        if v is not None and th.value is not None and v < th.value:
            alerts.append(
                Alert(
                    rule, vital.value, v, th.value, severity, f"{label} {v} is below {th.value}.", th.source
                )
            )

    if phase == "pre_dose":
        above("predose_sbp_above", Vital.SBP, t.predose_sbp_above, "Pre-dose systolic BP")
        above("predose_dbp_above", Vital.DBP, t.predose_dbp_above, "Pre-dose diastolic BP")
    else:
        above("sbp_above", Vital.SBP, t.sbp_above, "Systolic BP", "critical")
        above("dbp_above", Vital.DBP, t.dbp_above, "Diastolic BP", "critical")
        if baseline is not None:
            for vital, th, label in (
                (Vital.SBP, t.sbp_rise_at_least, "Systolic BP"),
                (Vital.DBP, t.dbp_rise_at_least, "Diastolic BP"),
            ):
                v, b = reading.get(vital), baseline.get(vital)
                if v is not None and b is not None and th.value is not None and v - b >= th.value:
                    alerts.append(
                        Alert(
                            f"{vital.value}_rise_at_least",
                            vital.value,
                            v,
                            th.value,
                            "warning",
                            f"{label} {v} has risen {v - b} mmHg from baseline {b} (alert at a rise of "
                            f"{th.value} or more).",
                            th.source,
                        )
                    )
    below("spo2_below", Vital.SPO2, t.spo2_below, "SpO2", "critical")
    above("hr_above", Vital.HR, t.hr_above, "Heart rate")
    below("hr_below", Vital.HR, t.hr_below, "Heart rate")
    above("rr_above", Vital.RR, t.rr_above, "Respiratory rate")
    below("rr_below", Vital.RR, t.rr_below, "Respiratory rate", "critical")
    return tuple(alerts)


def evaluate_sedation(moaas: int, thresholds: AlertThresholds = DEFAULT_THRESHOLDS) -> tuple[Alert, ...]:
    th = thresholds.moaas_at_or_below
    if th.value is not None and moaas <= th.value:
        return (
            Alert(
                "moaas_at_or_below",
                "moaas",
                moaas,
                th.value,
                "critical",
                f"MOAA/S {moaas}: {MOAAS_LEVELS.get(moaas, '')}.",
                th.source,
            ),
        )
    return ()


def baseline_within_limits(
    reading: Reading, thresholds: AlertThresholds = DEFAULT_THRESHOLDS
) -> tuple[str, ...]:
    """Gate check: sentences for each pre-dose limit the baseline reading breaks (empty = within limits)."""
    problems = [a.message for a in evaluate_reading(reading, phase="pre_dose", thresholds=thresholds)]
    if reading.sbp is None or reading.dbp is None:
        problems.append("Baseline blood pressure has not been recorded.")
    return tuple(problems)


def peak_rise(baseline: Reading, readings: Iterable[Reading], vital: Vital) -> int | None:
    """Largest rise from baseline for ``vital`` across ``readings`` (ref §7 note 2)."""
    b = baseline.get(vital)
    if b is None:
        return None
    rises = [v - b for r in readings if (v := r.get(vital)) is not None]
    return max(rises) if rises else None


# --------------------------------------------------------------------------------------------------
# Due-reminders for the vitals schedule
# --------------------------------------------------------------------------------------------------

CheckpointKind = Literal["pre_dose", "offset", "pre_discharge"]


@dataclass(frozen=True)
class Checkpoint:
    label: str
    kind: CheckpointKind
    offset_minutes: int | None = None
    source: str = ""


@dataclass(frozen=True)
class DueItem:
    label: str
    due_at: datetime | None
    status: Literal["done", "due", "overdue", "upcoming"]
    done_at: datetime | None = None


@dataclass(frozen=True)
class ReminderWindow:
    """UI timing (engineering defaults, clinic-configurable): a reading taken up to ``early`` minutes before
    a checkpoint may count for it; the checkpoint shows as due ``lead`` minutes before and overdue ``grace``
    minutes after its time.  Which check a reading counts for: ``assign_readings``."""

    early: int = 5
    lead: int = 5
    grace: int = 5


def assign_readings(
    due_times: Sequence[datetime], taken_at: Sequence[datetime], *, early: timedelta
) -> dict[int, datetime]:
    """Give each reading to the timed check it is nearest to: {index in ``due_times``: reading time}.

    The rule (a design choice, not a published standard; docs/clinical-reference.md#vitals-checks): the
    label asks for blood pressure "about 40 minutes" after dosing [S4][S7] ref §2.1, so a check is a time
    with tolerance, not a window that ends where the next check's begins.

    * A reading may count for a check from ``early`` before its due time onwards (no later limit: a late
      reading is still that check's reading unless it is nearer to the next one).
    * Among the checks it may count for, a reading goes to the nearest; equally near an earlier and a
      later check, it goes to the earlier one (the later check can still be done on time).
    * Each reading counts for at most one check, and each check takes at most one reading: the nearest of
      those given to it (equally near: the earlier reading).  The other readings stay on the record as
      extra readings.

    Hence a reading taken exactly at a check's due time always counts for that check (no other check is
    as near, due times being distinct), and adding a reading never undoes a check that was done.
    """
    chosen: dict[int, datetime] = {}
    for t in taken_at:
        eligible = [i for i, due in enumerate(due_times) if t >= due - early]
        if not eligible:
            continue
        best = min(eligible, key=lambda i: (abs(t - due_times[i]), due_times[i]))
        held = chosen.get(best)
        due = due_times[best]
        if held is None or (abs(t - due), t) < (abs(held - due), held):
            chosen[best] = t
    return chosen


def due_vitals(
    checkpoints: Sequence[Checkpoint],
    *,
    dose_start: datetime | None,
    now: datetime,
    taken_at: Sequence[datetime],
    interval_minutes: int | None = None,
    recovery_started: datetime | None = None,
    window: ReminderWindow | None = None,
) -> tuple[DueItem, ...]:
    """Which scheduled vitals are done, due, overdue or upcoming, on one clock from ``dose_start``.

    The readings fall into three phases, so that no reading counts for two checks: the pre-dose check
    takes the last reading at or before ``dose_start``; the timed checks (the protocol's offsets, e.g.
    ~40 min, and the interval checks, e.g. every 10 min for IV) take the readings after ``dose_start`` and
    before recovery starts, each reading given to its nearest check (``assign_readings``); the
    pre-discharge check becomes due once recovery has started and is done by the last reading since then.
    Interval checks are generated up to one interval past ``now`` and stop where recovery starts (the
    pre-discharge check takes over then); fixed offsets are always listed.
    """
    window = window or ReminderWindow()
    taken = sorted(taken_at)
    items: list[DueItem] = []
    early = timedelta(minutes=window.early)
    lead = timedelta(minutes=window.lead)
    grace = timedelta(minutes=window.grace)

    offsets: list[tuple[str, int]] = []
    for cp in checkpoints:
        if cp.kind == "pre_dose":
            pre = [t for t in taken if dose_start is None or t <= dose_start]
            if pre:
                items.append(DueItem(cp.label, None, "done", pre[-1]))
            else:
                items.append(DueItem(cp.label, None, "due" if dose_start is None else "overdue"))
        elif cp.kind == "offset" and cp.offset_minutes is not None:
            offsets.append((cp.label, cp.offset_minutes))
    if dose_start is not None:
        timed = [t for t in taken if t > dose_start and (recovery_started is None or t < recovery_started)]
        if interval_minutes and interval_minutes > 0:
            elapsed = max([now, *timed]) - dose_start
            horizon = int(elapsed.total_seconds() // 60) + max(interval_minutes, window.early + 1)
            fixed = {o for _, o in offsets}
            for m in range(interval_minutes, horizon + 1, interval_minutes):
                due = dose_start + timedelta(minutes=m)
                if recovery_started is not None and due >= recovery_started:
                    break
                if m not in fixed:
                    offsets.append((f"+{m} min", m))
        offsets.sort(key=lambda x: x[1])
        due_times = [dose_start + timedelta(minutes=m) for _, m in offsets]
        done = assign_readings(due_times, timed, early=early)
        for i, ((label, _m), due) in enumerate(zip(offsets, due_times, strict=True)):
            if i in done:
                items.append(DueItem(label, due, "done", done[i]))
            elif now > due + grace:
                items.append(DueItem(label, due, "overdue"))
            elif now >= due - lead:
                items.append(DueItem(label, due, "due"))
            else:
                items.append(DueItem(label, due, "upcoming"))
    for cp in checkpoints:
        if cp.kind == "pre_discharge":
            if recovery_started is None:
                items.append(DueItem(cp.label, None, "upcoming"))
            else:
                late = [t for t in taken if t >= recovery_started]
                items.append(
                    DueItem(cp.label, None, "done", late[-1]) if late else DueItem(cp.label, None, "due")
                )
    return tuple(items)
