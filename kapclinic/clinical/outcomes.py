"""Change from baseline, response, remission, reliable change and relapse (pure, no Django).

Definitions (docs/clinical-reference.md#response-remission §4.4, #reliable-change §4.5):

* **Baseline** is the first administration of an instrument in an episode of care; the caller passes it
  explicitly (ref §4.4: "store baseline explicitly ... configurable").
* **Change** = follow-up total − baseline total (negative = fewer symptoms).
* **Percent change** = change / baseline × 100, computed only when baseline > 0 (ref §4.4); otherwise
  ``None``.
* **Response**: PHQ-9 and GAD-7 default to a >= 50 % reduction from baseline [S48] ref §4.4 (GAD-7 by
  analogy). PCL-5 defaults to a >= 10-point drop (NC-PTSD clinically meaningful change) [S59a] ref §4.4;
  its "or reliable change" alternative is implied, since the PCL-5 reliable-change threshold
  (≈ 13.8 points with the defaults below) is larger than 10. If both a percent and a point rule are
  configured, meeting either counts. With only a percent rule and a baseline of 0, response is ``None``
  (not applicable).
* **Remission**: follow-up total below the instrument's cut-off: PHQ-9 < 5 [S48]; GAD-7 < 5
  (convention, UNCONFIRMED as a formal standard); PCL-5 below the probable-PTSD cut-off, default 33
  [S56][S59b] ref §4.3, §4.4.
* **Reliable change** (Jacobson & Truax 1991, ref §4.5 [S64]):
  ``S_diff = SD × sqrt(2 × (1 − r))``, ``RCI = (post − pre) / S_diff``; reliable when ``|RCI| > z``
  (z = 1.96 for 95 %). SD and r are configurable per instrument; defaults: PHQ-9 SD 5.5, r 0.84 (RC
  ≈ 6.1; SD [S54] SECONDARY, r UNCONFIRMED per ref §8 — review locally), GAD-7 SD 5.59, r 0.87 (RC ≈ 5.6)
  [S53], PCL-5 SD 12.4 [S61], r 0.84 [S56] (RC ≈ 13.8). A clinic may instead fix a minimum raw change in
  points (``rc_min_points``), e.g. PCL-5 >= 15 per Marx 2022 [S57].
* **Clinically significant change** (Jacobson–Truax): reliably improved AND moved from at/above the
  remission cut-off to below it (ref §4.5).
* **Relapse** (project definition; the reference defines none): walking the follow-ups in time order, a
  patient *responds* at the first follow-up meeting the response criterion. After that, a relapse is
  recorded at the follow-up that completes a run of ``relapse_consecutive`` (default 1) consecutive
  follow-ups not meeting the response criterion. The patient may respond again later, and relapse again;
  every relapse is listed. "Relapsed" in cohort counts means at least one relapse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType


class ReliableChangeCategory(StrEnum):
    IMPROVED = "reliably_improved"
    NO_CHANGE = "no_reliable_change"
    DETERIORATED = "reliably_deteriorated"


@dataclass(frozen=True)
class OutcomeSettings:
    """Per-instrument, clinic-configurable outcome rules (defaults cite ref §4.4/§4.5)."""

    remission_below: int
    rci_sd: float
    rci_r: float
    response_min_percent_drop: float | None = 50.0
    response_min_point_drop: int | None = None
    rci_z: float = 1.96
    #: If set, reliable change is |change| >= this many points instead of the RCI formula.
    rc_min_points: int | None = None
    #: Consecutive non-response follow-ups after a response that count as a relapse.
    relapse_consecutive: int = 1
    source: str = ""

    def __post_init__(self) -> None:
        if self.rci_sd <= 0:
            raise ValueError("The reliable-change SD must be greater than 0.")
        if not 0 <= self.rci_r < 1:
            raise ValueError("The reliable-change reliability r must be at least 0 and below 1.")
        if self.rci_z <= 0:
            raise ValueError("The reliable-change z must be greater than 0.")
        if self.response_min_percent_drop is None and self.response_min_point_drop is None:
            raise ValueError("A response rule needs a percent drop, a point drop, or both.")
        if self.response_min_percent_drop is not None and not 0 < self.response_min_percent_drop <= 100:
            raise ValueError("The response percent drop must be above 0 and at most 100.")
        if self.response_min_point_drop is not None and self.response_min_point_drop <= 0:
            raise ValueError("The response point drop must be greater than 0.")
        if self.rc_min_points is not None and self.rc_min_points <= 0:
            raise ValueError("The reliable-change minimum points must be greater than 0.")
        if self.relapse_consecutive < 1:
            raise ValueError("Relapse needs at least 1 follow-up without response.")


DEFAULT_OUTCOME_SETTINGS: Mapping[str, OutcomeSettings] = MappingProxyType(
    {
        "PHQ-9": OutcomeSettings(
            remission_below=5,
            rci_sd=5.5,
            rci_r=0.84,
            response_min_percent_drop=50.0,
            source="Response >= 50 %, remission < 5 [S48] ref §4.4; "
            "RCI SD 5.5 [S54], r 0.84 (UNCONFIRMED) ref §4.5",
        ),
        "GAD-7": OutcomeSettings(
            remission_below=5,
            rci_sd=5.59,
            rci_r=0.87,
            response_min_percent_drop=50.0,
            source="Response >= 50 % by analogy, remission < 5 convention (UNCONFIRMED) ref §4.4; "
            "RCI SD 5.59, r 0.87 [S53] ref §4.5",
        ),
        "PCL-5": OutcomeSettings(
            remission_below=33,
            rci_sd=12.4,
            rci_r=0.84,
            response_min_percent_drop=None,
            response_min_point_drop=10,
            source="Response >= 10-point drop [S59a], remission below probable-PTSD cut-off 33 [S56][S59b] "
            "ref §4.3, §4.4; RCI SD 12.4 [S61], r 0.84 [S56] ref §4.5",
        ),
    }
)


def outcome_settings(instrument: str, **overrides: object) -> OutcomeSettings:
    """Default settings for an instrument key, with keyword overrides (validated)."""
    try:
        base = DEFAULT_OUTCOME_SETTINGS[instrument]
    except KeyError as exc:
        raise ValueError(
            f"No outcome settings for {instrument!r}: choose one of {', '.join(DEFAULT_OUTCOME_SETTINGS)}."
        ) from exc
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ReliableChange:
    rci: float
    s_diff: float
    #: Smallest raw change counted as reliable (z × S_diff, or the fixed point rule).
    rc_points: float
    category: ReliableChangeCategory


def s_diff(sd: float, r: float) -> float:
    """Standard error of the difference: SD × sqrt(2 × (1 − r)) (ref §4.5)."""
    return sd * math.sqrt(2.0 * (1.0 - r))


def reliable_change(baseline: int, followup: int, settings: OutcomeSettings) -> ReliableChange:
    """Jacobson–Truax classification of one change (ref §4.5 [S64])."""
    sdiff = s_diff(settings.rci_sd, settings.rci_r)
    change = followup - baseline
    rci = change / sdiff
    if settings.rc_min_points is not None:
        threshold = float(settings.rc_min_points)
        reliable = abs(change) >= settings.rc_min_points
    else:
        threshold = settings.rci_z * sdiff
        reliable = abs(rci) > settings.rci_z
    if not reliable:
        category = ReliableChangeCategory.NO_CHANGE
    elif change < 0:
        category = ReliableChangeCategory.IMPROVED
    else:
        category = ReliableChangeCategory.DETERIORATED
    return ReliableChange(rci=rci, s_diff=sdiff, rc_points=threshold, category=category)


@dataclass(frozen=True)
class ChangeOutcome:
    baseline: int
    followup: int
    change: int
    percent_change: float | None
    response: bool | None
    remission: bool
    reliable_change: ReliableChange
    clinically_significant: bool


def percent_change(baseline: int, followup: int) -> float | None:
    """(follow-up − baseline) / baseline × 100; ``None`` when baseline is 0 (ref §4.4)."""
    if baseline <= 0:
        return None
    return (followup - baseline) * 100.0 / baseline


def is_response(baseline: int, followup: int, settings: OutcomeSettings) -> bool | None:
    drop = baseline - followup
    verdicts: list[bool] = []
    if settings.response_min_point_drop is not None:
        verdicts.append(drop >= settings.response_min_point_drop)
    if settings.response_min_percent_drop is not None and baseline > 0:
        # Integer-exact comparison: drop / baseline >= p / 100  <=>  drop × 100 >= p × baseline.
        verdicts.append(drop * 100 >= settings.response_min_percent_drop * baseline)
    if not verdicts:
        return None
    return any(verdicts)


def is_remission(total: int, settings: OutcomeSettings) -> bool:
    return total < settings.remission_below


def change_from_baseline(baseline: int, followup: int, settings: OutcomeSettings) -> ChangeOutcome:
    if baseline < 0 or followup < 0:
        raise ValueError("Totals cannot be negative.")
    rc = reliable_change(baseline, followup, settings)
    remission = is_remission(followup, settings)
    return ChangeOutcome(
        baseline=baseline,
        followup=followup,
        change=followup - baseline,
        percent_change=percent_change(baseline, followup),
        response=is_response(baseline, followup, settings),
        remission=remission,
        reliable_change=rc,
        clinically_significant=(
            rc.category is ReliableChangeCategory.IMPROVED
            and not is_remission(baseline, settings)
            and remission
        ),
    )


@dataclass(frozen=True)
class Measurement:
    at: datetime
    total: int
    #: Dosing sessions recorded before this measurement (for "sessions to response"), if known.
    sessions_before: int | None = None


@dataclass(frozen=True)
class FollowUp:
    measurement: Measurement
    outcome: ChangeOutcome


@dataclass(frozen=True)
class Trajectory:
    baseline: Measurement | None
    followups: tuple[FollowUp, ...]
    first_response: FollowUp | None
    relapses: tuple[FollowUp, ...]

    @property
    def responded(self) -> bool:
        return self.first_response is not None

    @property
    def relapsed(self) -> bool:
        return bool(self.relapses)

    @property
    def latest(self) -> FollowUp | None:
        return self.followups[-1] if self.followups else None

    @property
    def sessions_to_response(self) -> int | None:
        if self.first_response is None:
            return None
        return self.first_response.measurement.sessions_before


def trajectory(
    measurements: Sequence[Measurement], settings: OutcomeSettings, baseline_index: int = 0
) -> Trajectory:
    """Outcomes of every follow-up against the baseline, plus response and relapse (see module doc).

    ``measurements`` are sorted by time; the one at ``baseline_index`` (default the first) is the
    baseline and earlier ones are ignored.
    """
    ordered = sorted(measurements, key=lambda m: m.at)
    if not ordered:
        return Trajectory(baseline=None, followups=(), first_response=None, relapses=())
    if not 0 <= baseline_index < len(ordered):
        raise ValueError("The baseline index must point at one of the measurements.")
    baseline = ordered[baseline_index]
    followups = tuple(
        FollowUp(m, change_from_baseline(baseline.total, m.total, settings))
        for m in ordered[baseline_index + 1 :]
    )
    first_response, relapses = _response_and_relapses(followups, settings.relapse_consecutive)
    return Trajectory(
        baseline=baseline, followups=followups, first_response=first_response, relapses=relapses
    )


def relapse_flags(responses: Sequence[bool | None], consecutive: int = 1) -> tuple[bool, ...]:
    """For each follow-up's response verdict (in time order), whether a relapse is recorded there."""
    flags: list[bool] = []
    responding = False
    misses = 0
    for verdict in responses:
        relapse_here = False
        if verdict:
            responding = True
            misses = 0
        elif responding:
            misses += 1
            if misses >= consecutive:
                relapse_here = True
                responding = False
                misses = 0
        flags.append(relapse_here)
    return tuple(flags)


def _response_and_relapses(
    followups: Sequence[FollowUp], consecutive: int
) -> tuple[FollowUp | None, tuple[FollowUp, ...]]:
    first = next((f for f in followups if f.outcome.response), None)
    flags = relapse_flags([f.outcome.response for f in followups], consecutive)
    return first, tuple(f for f, flag in zip(followups, flags, strict=True) if flag)
