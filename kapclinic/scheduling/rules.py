"""Pure scheduling rules (no Django): appointment kinds, durations, overlap and conflicts.

Kept free of Django so the edge cases (back-to-back, containment, zero-length) are tested as plain
functions, including hypothesis properties.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from kapclinic.messaging.retry import retry_delay as retry_delay  # one back-off for every email

CONSULTATION = "consultation"
ASSESSMENT = "assessment"
PREPARATION = "preparation"
DOSING = "dosing"
INTEGRATION = "integration"
FOLLOW_UP = "follow_up"


@dataclass(frozen=True)
class KindRule:
    key: str
    label: str
    default_minutes: int
    min_minutes: int
    max_minutes: int
    source: str


# Lengths the clinic books by default. Dosing blocks: KAP practices describe ~3 h in-person dosing
# sessions [S36a] and dosing sessions lasting >= 2.5 h [S29] (ref §1.5); the Spravato label requires at
# least 2 h of post-dose observation [S2][S4] (ref §2.1, §2.7). Preparation and integration: 60 min per
# the product decision (no reference figure); follow-up 30 min is an administrative default,
# not a clinical number. Consultation/intake and assessment visits (issue 18: the pathway's first visits)
# are 60 min administrative defaults too, not clinical numbers. Clinics change the default length of
# every kind in ScheduleSettings.kind_minutes (within the kind's range) and the dosing range itself.
DEFAULT_KINDS: dict[str, KindRule] = {
    CONSULTATION: KindRule(
        CONSULTATION, "Consultation / intake", 60, 15, 180, "administrative default (issue 18)"
    ),
    ASSESSMENT: KindRule(ASSESSMENT, "Assessment", 60, 15, 180, "administrative default (issue 18)"),
    PREPARATION: KindRule(PREPARATION, "Preparation session", 60, 15, 180, "product default (issue 6)"),
    DOSING: KindRule(DOSING, "Dosing session", 180, 120, 180, "[S36a][S29] ref §1.5; [S2][S4] ref §2.7"),
    INTEGRATION: KindRule(INTEGRATION, "Integration session", 60, 15, 180, "product default (issue 6)"),
    FOLLOW_UP: KindRule(FOLLOW_UP, "Follow-up visit", 30, 10, 120, "administrative default"),
}


def with_default_minutes(kinds: dict[str, KindRule], minutes: dict[str, object]) -> dict[str, KindRule]:
    """``kinds`` with a clinic's own default lengths (``{"consultation": 45}``). An entry for an unknown
    kind, not a whole number, or outside the kind's range is ignored (the settings form refuses such
    values with a sentence; see :func:`default_minutes_problem`)."""
    out = dict(kinds)
    for key, value in minutes.items():
        rule = out.get(key)
        if rule is None or not isinstance(value, int) or isinstance(value, bool):
            continue
        if default_minutes_problem(rule, value) is None:
            out[key] = KindRule(key, rule.label, value, rule.min_minutes, rule.max_minutes, "clinic setting")
    return out


def default_minutes_problem(rule: KindRule, minutes: int) -> str | None:
    """A sentence when a clinic's default length for ``rule`` is outside the kind's range, else None."""
    return duration_problem(rule, minutes)


@dataclass(frozen=True)
class Slot:
    """A booked interval [start, end) holding some staff member, resource and patient."""

    ref: int
    start: dt.datetime
    end: dt.datetime
    staff_id: int | None = None
    resource_id: int | None = None
    patient_id: int | None = None


@dataclass(frozen=True)
class Conflict:
    what: str  # "staff" | "resource" | "patient"
    other_ref: int
    other_start: dt.datetime
    other_end: dt.datetime


def overlaps(a_start: dt.datetime, a_end: dt.datetime, b_start: dt.datetime, b_end: dt.datetime) -> bool:
    """Half-open intervals: one ending exactly when the other starts does not overlap."""
    return a_start < b_end and b_start < a_end


def conflicts(candidate: Slot, booked: Iterable[Slot]) -> list[Conflict]:
    """Every clash of `candidate` with `booked` slots (ignoring itself): staff, resource, patient."""
    found: list[Conflict] = []
    for other in booked:
        if other.ref == candidate.ref or not overlaps(candidate.start, candidate.end, other.start, other.end):
            continue
        for what, mine, theirs in (
            ("staff", candidate.staff_id, other.staff_id),
            ("resource", candidate.resource_id, other.resource_id),
            ("patient", candidate.patient_id, other.patient_id),
        ):
            if mine is not None and mine == theirs:
                found.append(Conflict(what, other.ref, other.start, other.end))
    order = {"staff": 0, "resource": 1, "patient": 2}
    return sorted(found, key=lambda c: (order[c.what], c.other_start, c.other_ref))


def duration_problem(rule: KindRule, minutes: int) -> str | None:
    """A sentence when `minutes` is outside the kind's allowed range, else None."""
    if minutes < rule.min_minutes or minutes > rule.max_minutes:
        return (
            f"Length must be between {rule.min_minutes} and {rule.max_minutes} minutes for a "
            f"{rule.label.lower()}; got {minutes}."
        )
    return None


# Patient-facing preparation instructions for a dosing appointment come from the patient's signed plan's
# protocol (its fasting times and its route's instructions: kapclinic.clinical.protocols.preparation_lines,
# see scheduling.selectors.dosing_preparation); this is what is said when there is no signed plan yet.
DOSING_PREPARATION_NO_PLAN: tuple[str, ...] = (
    "Your clinician will tell you how to prepare once your treatment plan is signed.",
    "Arrange for someone to take you home. Do not drive or operate machinery until the next day, "
    "after a restful sleep.",
)
PREPARATION_SOURCE = "[S2][S4] ref §2.7 (docs/clinical-reference-dosing.md §3)"
OTHER_PREPARATION: dict[str, tuple[str, ...]] = {
    CONSULTATION: (),
    ASSESSMENT: (),
    PREPARATION: ("Bring any questions you have about the dosing sessions.",),
    INTEGRATION: ("If you like, bring your journal reflection from your dosing session.",),
    FOLLOW_UP: (),
}


def preparation_for(kind: str, dosing: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``dosing``: the lines for the patient's protocol (None: no signed plan)."""
    if kind == DOSING:
        return dosing if dosing is not None else DOSING_PREPARATION_NO_PLAN
    return OTHER_PREPARATION.get(kind, ())


# retry_delay (imported above) is the back-off of every outbound email, reminders included.


# ---------------------------------------------------------------- a treatment plan's series

#: The appointment kind each kind of proposed appointment (kapclinic.treatment.models.VisitKind) is
#: booked as; the plan's reassessment at the end of the series is an assessment visit.
KIND_FOR_PROPOSAL: dict[str, str] = {
    "preparation": PREPARATION,
    "dosing": DOSING,
    "integration": INTEGRATION,
    "reassessment": ASSESSMENT,
}


def suggest_series_dates(
    lines: Iterable[tuple[int, str, int]], first: dt.date, sessions_per_week: float
) -> dict[int, dt.date]:
    """Suggested dates for a plan's proposed appointments ``(sequence, kind, week)``, in sequence order.

    Only a suggestion for the front desk, who can change every date before booking:
    - the lines of week 0 (preparation, before the series) one week apart from ``first``;
    - week ``w`` of the series starts ``w`` weeks after the last preparation line's week; within a week
      the dosing sessions are spread evenly (``7 / sessions_per_week`` days apart, rounded down);
    - an integration session the day after the dosing session it follows (integration "typically within
      a day or so" of a medicine session, docs/clinical-reference.md §6.2 [S35][S36a][S29]);
    - anything else (the reassessment) on the first day of its week.
    """
    ordered = sorted(lines)
    prep = [seq for seq, _kind, week in ordered if week == 0]
    out: dict[int, dt.date] = {seq: first + dt.timedelta(weeks=i) for i, seq in enumerate(prep)}
    series_start = first + dt.timedelta(weeks=len(prep))
    gap = max(1, int(7 // sessions_per_week)) if sessions_per_week > 0 else 7
    per_week: dict[int, int] = {}
    last_dosing: dt.date | None = None
    for seq, kind, week in ordered:
        if week == 0:
            continue
        week_start = series_start + dt.timedelta(weeks=week - 1)
        if kind == "dosing":
            k = per_week.get(week, 0)
            per_week[week] = k + 1
            day = week_start + dt.timedelta(days=min(6, k * gap))
            last_dosing = day
        elif kind == "integration" and last_dosing is not None:
            day = last_dosing + dt.timedelta(days=1)
        else:
            day = week_start
        out[seq] = day
    return out


# ---------------------------------------------------------------- the day grid


def visible_hours(spans: Iterable[tuple[int, int]], usual_start: int, usual_end: int) -> tuple[int, int, int]:
    """The hours the day grid shows: ``(first_hour, end_hour, outside)``.

    ``spans`` are the day's bookings as (start, end) minutes after local midnight, already clipped to the
    day (0..1440). The grid shows the clinic's usual hours, extended to the whole hour before the
    earliest booking and after the latest, so no booking is hidden (issue 18: bookings at 21:00 and
    01:00 were not shown); ``outside`` counts the bookings that lie partly outside the usual hours."""
    first, last, outside = usual_start, usual_end, 0
    for start, end in spans:
        if start < usual_start * 60 or end > usual_end * 60:
            outside += 1
        first = min(first, start // 60)
        last = max(last, -(-end // 60))
    return max(0, first), min(24, last), outside
