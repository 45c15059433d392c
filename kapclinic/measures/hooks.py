"""Hooks into apps that measures reads from but does not own (dosing sessions, appointments, plans).

Each hook looks for an optional function in the owning app and falls back to "nothing known", so the
measures app works before (and without) those apps. Owners opt in by defining:

* ``kapclinic.sessions.selectors.measure_dosing_times(patient_ids) -> dict[int, list[datetime]]``:
  start times of recorded (administered) dosing sessions per patient, oldest first.
* ``kapclinic.scheduling.selectors.measure_next_dosing(patient_ids) -> dict[int, datetime]``:
  the next booked dosing appointment per patient.
* ``kapclinic.treatment.selectors.measure_plan_dimensions(patient) -> dict[str, str]``:
  ``{"protocol": ..., "route": ..., "indication": <ICD-10-CM>}`` of the patient's current signed
  treatment plan (cohort dimensions).

Every hook takes a batch (or one patient) so callers keep a constant number of queries.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Iterable
from typing import Any


def _hook(module: str, name: str) -> Callable[..., Any] | None:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def dosing_times(patient_ids: Iterable[int]) -> dict[int, list[dt.datetime]]:
    fn = _hook("kapclinic.sessions.selectors", "measure_dosing_times")
    ids = list(patient_ids)
    if fn is None or not ids:
        return {}
    return {int(k): sorted(v) for k, v in fn(ids).items()}


def next_dosing(patient_ids: Iterable[int]) -> dict[int, dt.datetime]:
    fn = _hook("kapclinic.scheduling.selectors", "measure_next_dosing")
    ids = list(patient_ids)
    if fn is None or not ids:
        return {}
    return {int(k): v for k, v in fn(ids).items()}


def plan_dimensions(patient: Any) -> dict[str, str]:
    fn = _hook("kapclinic.treatment.selectors", "measure_plan_dimensions")
    if fn is None:
        return {}
    try:
        result = fn(patient) or {}
    except Exception:  # a broken hook must never block recording a safety-relevant response
        return {}
    return {k: str(v) for k, v in result.items() if k in {"protocol", "route", "indication"} and v}
