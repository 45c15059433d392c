"""Pure scheduling rules (no Django): appointment kinds, durations, overlap and conflicts.

Kept free of Django so the edge cases (back-to-back, containment, zero-length) are tested as plain
functions, including hypothesis properties.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

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
# not a clinical number. Clinics change these in ScheduleSettings.
DEFAULT_KINDS: dict[str, KindRule] = {
    PREPARATION: KindRule(PREPARATION, "Preparation session", 60, 15, 180, "product default (issue 6)"),
    DOSING: KindRule(DOSING, "Dosing session", 180, 120, 180, "[S36a][S29] ref §1.5; [S2][S4] ref §2.7"),
    INTEGRATION: KindRule(INTEGRATION, "Integration session", 60, 15, 180, "product default (issue 6)"),
    FOLLOW_UP: KindRule(FOLLOW_UP, "Follow-up visit", 30, 10, 120, "administrative default"),
}


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
    PREPARATION: ("Bring any questions you have about the dosing sessions.",),
    INTEGRATION: ("If you like, bring your journal reflection from your dosing session.",),
    FOLLOW_UP: (),
}


def preparation_for(kind: str, dosing: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """``dosing``: the lines for the patient's protocol (None: no signed plan)."""
    if kind == DOSING:
        return dosing if dosing is not None else DOSING_PREPARATION_NO_PLAN
    return OTHER_PREPARATION.get(kind, ())


def retry_delay(attempt: int, base_minutes: int = 5, cap_minutes: int = 240) -> dt.timedelta:
    """Back-off before retry number `attempt` (1-based): 5, 15, 45, 135, 240 minutes."""
    minutes = base_minutes * (3 ** max(0, attempt - 1))
    return dt.timedelta(minutes=min(minutes, cap_minutes))
