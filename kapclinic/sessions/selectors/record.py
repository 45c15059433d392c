"""One session's facts read once (SessionRecord, the given record) and its vitals readings and ratings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any, NamedTuple

from kapclinic.clinical.protocols import Protocol
from kapclinic.clinical.vitals import LOINC, Reading, Vital
from kapclinic.sessions.models import (
    Administration,
    DeviceUse,
    DosingSession,
    Observation,
    ObservationKind,
    SessionAlert,
)


@dataclass(frozen=True)
class GivenRecord:
    """What was actually given, per route, for the session page, the timeline and the REMS record."""

    form: str  # the protocol's dose form: nasal_device | vial_iv | vial_im | lozenge
    admin: Administration | None
    devices: list[DeviceUse]
    devices_ordered: int
    next_device: int | None  # the number of the next device to record, None when all are recorded
    next_device_from: dt.datetime | None  # the earliest time the next device may be used
    gaps: tuple[str, ...]  # what is missing before dosing can be marked complete
    partial: bool  # fewer devices recorded than ordered

    @property
    def dose_given_mg(self) -> Decimal | None:
        """The dose actually given: for devices, the ordered dose times the share of devices used; for
        an IV infusion that delivered less (stopped early), the amount infused."""
        if self.admin is None or self.admin.administered_at is None:
            return None
        if self.admin.infused_mg is not None:
            return self.admin.infused_mg
        if self.form == "nasal_device" and self.devices_ordered:
            return self.admin.dose_mg * len(self.devices) / self.devices_ordered
        return self.admin.dose_mg


class ObservationRow(NamedTuple):
    """The columns of an observation the session page prints or derives from (no model instance)."""

    id: int
    kind: str
    code: str
    display: str
    value: int
    at: dt.datetime
    reading: int
    phase: str
    recorded_by_name: str


_OBSERVATION_KIND_LABELS = dict(ObservationKind.choices)


class SessionRecord:
    """What one page of a session reads of its record, each part at most once and only when needed: the
    administration (with everyone it names) and its devices, the observations, the alerts. Built for one
    request by the view and dropped with it; nothing is shared between requests. The facts the page
    derives (latest ratings, vitals taken, baseline and final readings, open alerts) are found here from
    those rows the same way the services' single-purpose queries find them."""

    def __init__(self, session: DosingSession) -> None:
        self.session = session

    @cached_property
    def admin(self) -> Administration | None:
        return (
            Administration.objects.filter(session_id=self.session.pk)
            .select_related("ordered_by", "double_checked_by", "administered_by", "route_recorded_by")
            .first()
        )

    @cached_property
    def devices(self) -> list[DeviceUse]:
        admin = self.admin
        return list(admin.device_uses.select_related("recorded_by")) if admin is not None else []

    @cached_property
    def observations(self) -> list[ObservationRow]:
        """Every observation of the session in the model's order (at, id)."""
        return [
            ObservationRow(*row)
            for row in Observation.objects.filter(session_id=self.session.pk)
            .order_by("at", "id")
            .values_list(
                "id", "kind", "code", "display", "value", "at", "reading", "phase", "recorded_by__full_name"
            )
        ]

    @cached_property
    def alerts(self) -> list[SessionAlert]:
        """Every alert of the session in the model's order (raised_at, id)."""
        return list(SessionAlert.objects.filter(session_id=self.session.pk).select_related("acknowledged_by"))

    @cached_property
    def missed_explanations(self) -> dict[int, str]:
        """The written reasons for missed scheduled vitals checks, by minutes after the dose start."""
        return missed_check_explanations(self.session)

    @property
    def open_alerts(self) -> list[SessionAlert]:
        return [a for a in self.alerts if a.acknowledged_at is None]

    def last_rating(self, kind: str) -> int | None:
        """As ``services.last_rating``: the value of the newest observation of the kind (by at, id)."""
        for o in reversed(self.observations):
            if o.kind == kind:
                return o.value
        return None

    def vitals_taken_at(self) -> list[dt.datetime]:
        """The distinct times vitals were taken, oldest first."""
        return sorted({o.at for o in self.observations if o.kind == ObservationKind.VITAL})

    def _phase_reading(self, phase: str) -> Reading | None:
        rows = sorted(
            (o for o in self.observations if o.kind == ObservationKind.VITAL and o.phase == phase),
            key=lambda o: (o.reading, o.id),
            reverse=True,
        )
        return latest_reading((o.reading, o.code, o.value) for o in rows)

    def baseline_reading(self) -> Reading | None:
        """As ``services.baseline_reading``: the newest pre-dose vitals reading."""
        return self._phase_reading("pre_dose")

    def final_reading(self) -> Reading | None:
        """As ``services.final_reading``: the newest recovery vitals reading."""
        return self._phase_reading("recovery")


def given_record(
    session: DosingSession, protocol: Protocol | None = None, record: SessionRecord | None = None
) -> GivenRecord:
    """The administration record of a session (two queries: the order, its devices; none when the page's
    ``record`` has read them)."""
    from kapclinic.clinical import session_state as sm
    from kapclinic.sessions.services import protocol_for

    protocol = protocol or protocol_for(session)
    form = protocol.dose.form
    reads = record or SessionRecord(session)
    admin = reads.admin
    devices = reads.devices
    ordered = (admin.devices or 0) if admin is not None else 0
    admin_record = sm.AdministrationRecord(
        form,
        devices_ordered=ordered,
        devices_recorded=len(devices),
        infusion_stopped=admin is not None and admin.infusion_stopped_at is not None,
        lozenge_recorded=admin is not None and admin.hold_minutes is not None,
        partial_reason=admin.partial_dose_reason if admin is not None else "",
    )
    next_device = len(devices) + 1 if form == "nasal_device" and len(devices) < ordered else None
    spacing = protocol.dose.device_spacing_minutes.value
    next_from = (
        devices[-1].at + dt.timedelta(minutes=int(spacing.value))
        if next_device is not None and devices and spacing is not None
        else None
    )
    return GivenRecord(
        form=form,
        admin=admin,
        devices=devices,
        devices_ordered=ordered,
        next_device=next_device,
        next_device_from=next_from,
        gaps=sm.dosing_completion_gaps(admin_record),
        partial=admin_record.partial,
    )


# ---------------------------------------------------------------- vitals readings and ratings of one session


def baseline_reading(session: DosingSession) -> Reading | None:
    return latest_reading(
        Observation.objects.filter(session_id=session.pk, kind=ObservationKind.VITAL, phase="pre_dose")
        .order_by("-reading", "-id")
        .values_list("reading", "code", "value")[:5]
    )


def latest_reading(rows: Iterable[tuple[int, str, Any]]) -> Reading | None:
    """The newest reading of (reading, code, value) rows given newest first (ordered by -reading, -id,
    at most 5): the baseline (pre-dose) and final (recovery) readings are this over their phase's rows."""
    rows = list(rows)[:5]
    if not rows:
        return None
    latest = rows[0][0]
    return _reading_values((code, value) for reading, code, value in rows if reading == latest)


def _reading_values(pairs: Iterable[tuple[str, Any]]) -> Reading:
    """A Reading from (LOINC code, value) pairs; codes that are not vitals are ignored."""
    by_code = {v: k for k, v in ((vital, LOINC[vital].loinc) for vital in Vital)}
    values: dict[str, int] = {}
    for code, value in pairs:
        vital = by_code.get(code)
        if vital is not None:
            values[vital.value] = value
    return Reading(**values)


def previous_dose_at(session: DosingSession) -> dt.datetime | None:
    """First-dose time of the patient's previous dosed session (for the PHQ-9 window)."""
    return (
        DosingSession.objects.filter(patient_id=session.patient_id, first_dose_at__isnull=False)
        .exclude(pk=session.pk)
        .order_by("-first_dose_at")
        .values_list("first_dose_at", flat=True)
        .first()
    )


def last_rating(session: DosingSession, kind: str) -> int | None:
    obs = session.observations.filter(kind=kind).order_by("-at", "-id").first()
    return obs.value if obs else None


def final_reading(session: DosingSession) -> Reading | None:
    return latest_reading(
        session.observations.filter(kind=ObservationKind.VITAL, phase="recovery")
        .order_by("-reading", "-id")
        .values_list("reading", "code", "value")[:5]
    )


MISSED_CHECK_CODE = "missed_check:"


def missed_check_explanations(session: DosingSession) -> dict[int, str]:
    """{minutes after the dose start: the written reason} for the scheduled checks explained as missed."""
    out: dict[int, str] = {}
    for code, text in session.events.filter(code__startswith=MISSED_CHECK_CODE).values_list("code", "text"):
        out[int(code.removeprefix(MISSED_CHECK_CODE))] = text
    return out
