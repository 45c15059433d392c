"""Exact scoring of PHQ-9, GAD-7 and PCL-5 (pure functions, no Django).

Rules and defaults, all from docs/clinical-reference.md (`ref §n` = its section n):

* Totals are plain sums of the scored items; no prorating. A form with any scored item missing gets no
  total, no band and no diagnosis, and lists the missing item numbers (ref §4.1: prorating rules
  UNCONFIRMED, "safest default is to not compute a total").
* Severity bands come from the instrument data file (PHQ-9 5/10/15/20 [S45] ref §4.1; GAD-7 5/10/15
  [S44b][S44c] ref §4.2). The PCL-5 has no official bands (ref §4.3 [S60b]); its severity is ``None``.
* PHQ-9 item 9: any answer >= 1 raises ``item9_positive``; >= 2 raises ``item9_urgent``
  (design recommendation, ref §3.9). Raised even on an incomplete form: a safety signal is never
  suppressed by a missing item.
* PHQ-9 DSM-based algorithm as implemented in CamCOPS [S42f] ref §4.1: count items 1-8 scoring >= 2
  and item 9 scoring >= 1; "major depressive syndrome" if >= 5 counted including item 1 or 2; "other
  depressive syndrome" if 2-4 counted including item 1 or 2.
* PCL-5 clusters B 1-5, C 6-7, D 8-14, E 15-20; provisional DSM-5 diagnosis when items rated >= 2
  give >= 1 B, >= 1 C, >= 2 D and >= 2 E [S60a][S60b][S36j] ref §4.3. Probable PTSD at total >= 33 by
  default (31-33 across samples; pick one) [S56][S59b] ref §0, §4.3.
* Screening cut-off total >= 10 for PHQ-9 [S45] ref §4.1 and GAD-7 [S42b][S51] ref §4.2
  (``screen_positive`` flag).

Every threshold is a field of :class:`ScoringSettings` with the cited default; clinics configure it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from kapclinic.clinical.instruments.loader import Band, Instrument, get_instrument

FLAG_ITEM9_POSITIVE = "item9_positive"
FLAG_ITEM9_URGENT = "item9_urgent"
FLAG_SCREEN_POSITIVE = "screen_positive"
FLAG_PROBABLE_PTSD = "probable_ptsd"
FLAG_INCOMPLETE = "incomplete"

DX_MAJOR_DEPRESSIVE_SYNDROME = "major_depressive_syndrome"
DX_OTHER_DEPRESSIVE_SYNDROME = "other_depressive_syndrome"
DX_PROVISIONAL_PTSD = "provisional_ptsd"

_EMPTY: Mapping[str, tuple[int, ...]] = MappingProxyType({})


@dataclass(frozen=True)
class ScoringSettings:
    """Clinic-configurable thresholds; every default cites the reference."""

    #: PHQ-9 item 9 answer at or above which a safety alert is raised (any > 0; ref §3.9).
    item9_positive_min: int = 1
    #: PHQ-9 item 9 answer at or above which the alert is urgent (ref §3.9).
    item9_urgent_min: int = 2
    #: PHQ-9 screening cut-off, total >= 10 [S45] ref §4.1.
    phq9_screen_min: int = 10
    #: GAD-7 screening cut-off, total >= 10 [S42b][S51] ref §4.2.
    gad7_screen_min: int = 10
    #: PHQ-9 DSM algorithm: an item 1-8 counts at >= 2, item 9 at >= 1 [S42f] ref §4.1.
    phq9_symptom_min: int = 2
    phq9_item9_symptom_min: int = 1
    #: Major depressive syndrome: >= 5 counted items incl. item 1 or 2 [S42f] ref §4.1.
    phq9_major_min_count: int = 5
    #: Other depressive syndrome: 2-4 counted items incl. item 1 or 2 [S42f] ref §4.1.
    phq9_other_min_count: int = 2
    #: PCL-5 item counts as an endorsed symptom at >= 2 "Moderately" [S60a][S60b] ref §4.3.
    pcl5_symptom_min: int = 2
    #: PCL-5 DSM-5 cluster requirements: >= 1 B, >= 1 C, >= 2 D, >= 2 E [S60a][S60b][S36j] ref §4.3.
    pcl5_cluster_min: tuple[tuple[str, int], ...] = (("B", 1), ("C", 1), ("D", 2), ("E", 2))
    #: PCL-5 probable PTSD at total >= this (31-33; e.g. 33) [S56][S59b] ref §0, §4.3.
    pcl5_probable_ptsd_min: int = 33
    #: Optional band cut-points per instrument key, replacing the data file's lower bounds
    #: (e.g. {"PHQ-9": (5, 10, 15, 20)}). Labels and codes stay those of the data file.
    band_cutpoints: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: _EMPTY)


DEFAULT_SETTINGS = ScoringSettings()


class AnswerError(ValueError):
    """Answers that cannot be scored. ``errors`` holds one sentence per problem."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        super().__init__(" ".join(self.errors))


@dataclass(frozen=True)
class ScoreResult:
    instrument: str
    version: str
    #: One entry per item in instrument order (unscored items included); ``None`` = not answered.
    answers: tuple[int | None, ...]
    total: int | None
    severity: str | None
    severity_label: str | None
    subscales: Mapping[str, int]
    flags: tuple[str, ...]
    provisional_diagnosis: str | None
    #: Numbers (1-based) of scored items without an answer.
    missing_items: tuple[int, ...]
    #: PHQ-9 item 9 answer (``None`` for other instruments or when unanswered).
    item9: int | None = None

    @property
    def complete(self) -> bool:
        return not self.missing_items

    def has_flag(self, flag: str) -> bool:
        return flag in self.flags

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``manage.py score`` (issue #3)."""
        return {
            "instrument": self.instrument,
            "version": self.version,
            "total": self.total,
            "severity": self.severity,
            "subscales": dict(self.subscales),
            "flags": list(self.flags),
            "provisional_diagnosis": self.provisional_diagnosis,
        }


def bands_for(instrument: Instrument, settings: ScoringSettings = DEFAULT_SETTINGS) -> tuple[Band, ...]:
    """Severity bands, with any clinic cut-point override applied."""
    cutpoints = settings.band_cutpoints.get(instrument.key)
    if cutpoints is None or not instrument.bands:
        return instrument.bands
    if len(cutpoints) != len(instrument.bands) - 1:
        raise ValueError(
            f"{instrument.key} band cut-points must number {len(instrument.bands) - 1}, "
            "one per band boundary."
        )
    lows = (instrument.min_total, *cutpoints)
    if any(b <= a for a, b in itertools.pairwise(lows)) or lows[-1] > instrument.max_total:
        raise ValueError(f"{instrument.key} band cut-points must increase within the score range.")
    highs = (*(c - 1 for c in cutpoints), instrument.max_total)
    return tuple(
        Band(min=lo, max=hi, code=b.code, label=b.label, source="clinic setting")
        for lo, hi, b in zip(lows, highs, instrument.bands, strict=True)
    )


def band_for(instrument: Instrument, total: int, settings: ScoringSettings = DEFAULT_SETTINGS) -> Band | None:
    for band in bands_for(instrument, settings):
        if band.contains(total):
            return band
    return None


def validate_answers(instrument: Instrument, answers: Sequence[int | None]) -> tuple[int | None, ...]:
    """Check count and range; return answers padded to one per item. Raises :class:`AnswerError`.

    Accepted lengths: one per item, or one per scored item when the unscored items come last (e.g. the
    PHQ-9 without its difficulty item 10). Out-of-range values are refused, never clamped.
    """
    n_items = len(instrument.items)
    n_scored = len(instrument.scored_items)
    trailing_unscored = all(not i.scored for i in instrument.items[n_scored:])
    allowed = {n_items} | ({n_scored} if trailing_unscored else set())
    if len(answers) not in allowed:
        expected = " or ".join(str(n) for n in sorted(allowed))
        raise AnswerError(
            [f"{instrument.key} needs {expected} answers, one per item in order; {len(answers)} were given."]
        )
    errors: list[str] = []
    for item, value in zip(instrument.items, answers, strict=False):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"Item {item.number} answer {value!r} is not a whole number.")
            continue
        valid = sorted(o.score for o in item.options)
        if value not in valid:
            errors.append(
                f"Item {item.number} answer {value} is out of range: {instrument.key} item {item.number} "
                f"answers must be {valid[0]} to {valid[-1]}."
            )
    if errors:
        raise AnswerError(errors)
    padded: tuple[int | None, ...] = tuple(answers) + (None,) * (n_items - len(answers))
    return padded


def answers_from_link_ids(
    instrument: Instrument, by_link_id: Mapping[str, int | None]
) -> tuple[int | None, ...]:
    """Order answers keyed by ``linkId`` (e.g. ``phq9-3``) into item order; unknown ids are refused."""
    known = {i.link_id for i in instrument.items}
    unknown = sorted(set(by_link_id) - known)
    if unknown:
        raise AnswerError([f"{instrument.key} has no item {u}." for u in unknown])
    return tuple(by_link_id.get(i.link_id) for i in instrument.items)


def score(
    instrument: Instrument | str,
    answers: Sequence[int | None],
    settings: ScoringSettings = DEFAULT_SETTINGS,
) -> ScoreResult:
    """Score one administration. ``answers`` are item scores in item order, ``None`` for unanswered."""
    inst = get_instrument(instrument) if isinstance(instrument, str) else instrument
    padded = validate_answers(inst, answers)
    scored = [(item, value) for item, value in zip(inst.items, padded, strict=True) if item.scored]
    missing = tuple(item.number for item, value in scored if value is None)
    complete = not missing
    values: list[int] = [v for _, v in scored if v is not None]
    total = sum(values) if complete else None
    band = band_for(inst, total, settings) if total is not None else None
    flags: list[str] = []
    diagnosis: str | None = None
    subscales: dict[str, int] = {}
    item9: int | None = None

    if inst.scoring_rule == "phq9":
        item9 = padded[8]
        if item9 is not None and item9 >= settings.item9_positive_min:
            flags.append(FLAG_ITEM9_POSITIVE)
        if item9 is not None and item9 >= settings.item9_urgent_min:
            flags.append(FLAG_ITEM9_URGENT)
        if total is not None and total >= settings.phq9_screen_min:
            flags.append(FLAG_SCREEN_POSITIVE)
        if complete:
            diagnosis = phq9_syndrome([v for v in padded[:9] if v is not None], settings)
    elif inst.scoring_rule == "gad7":
        if total is not None and total >= settings.gad7_screen_min:
            flags.append(FLAG_SCREEN_POSITIVE)
    elif inst.scoring_rule == "pcl5":
        for cluster in inst.clusters:
            cluster_values = [v for item, v in scored if item.cluster == cluster]
            if all(v is not None for v in cluster_values):
                subscales[cluster] = sum(v for v in cluster_values if v is not None)
        if total is not None and total >= settings.pcl5_probable_ptsd_min:
            flags.append(FLAG_PROBABLE_PTSD)
        if complete:
            clusters = [(item.cluster or "", v) for item, v in scored if v is not None]
            if pcl5_provisional_diagnosis(clusters, settings):
                diagnosis = DX_PROVISIONAL_PTSD
    else:  # pragma: no cover - data files only name the three rules above
        raise ValueError(f"Unknown scoring rule {inst.scoring_rule!r}.")

    if not complete:
        flags.append(FLAG_INCOMPLETE)
    return ScoreResult(
        instrument=inst.key,
        version=inst.version,
        answers=padded,
        total=total,
        severity=band.code if band else None,
        severity_label=band.label if band else None,
        subscales=MappingProxyType(subscales),
        flags=tuple(flags),
        provisional_diagnosis=diagnosis,
        missing_items=missing,
        item9=item9,
    )


def phq9_syndrome(items_1_to_9: Sequence[int], settings: ScoringSettings = DEFAULT_SETTINGS) -> str | None:
    """CamCOPS DSM-based PHQ-9 algorithm [S42f] ref §4.1. Needs all nine answers."""
    if len(items_1_to_9) != 9:
        raise ValueError("The PHQ-9 syndrome algorithm needs answers to items 1 to 9.")
    core = sum(1 for v in items_1_to_9[:2] if v >= settings.phq9_symptom_min)
    other = sum(1 for v in items_1_to_9[2:8] if v >= settings.phq9_symptom_min)
    other += 1 if items_1_to_9[8] >= settings.phq9_item9_symptom_min else 0
    counted = core + other
    if core == 0:
        return None
    if counted >= settings.phq9_major_min_count:
        return DX_MAJOR_DEPRESSIVE_SYNDROME
    if counted >= settings.phq9_other_min_count:
        return DX_OTHER_DEPRESSIVE_SYNDROME
    return None


def pcl5_provisional_diagnosis(
    cluster_answers: Sequence[tuple[str, int]], settings: ScoringSettings = DEFAULT_SETTINGS
) -> bool:
    """DSM-5 provisional PTSD rule on (cluster, answer) pairs [S60a][S60b][S36j] ref §4.3."""
    endorsed: dict[str, int] = {}
    for cluster, value in cluster_answers:
        if value >= settings.pcl5_symptom_min:
            endorsed[cluster] = endorsed.get(cluster, 0) + 1
    return all(endorsed.get(cluster, 0) >= need for cluster, need in settings.pcl5_cluster_min)
