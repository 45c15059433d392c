"""The administration record, per route (ref §6.1 "Drug administration"): esketamine devices 5 minutes
apart ([S7] ref §1.3), a partial dose with its reason, the IV infusion stop and rate, the SL lozenge hold,
the IM injection time; plausibility of typed times, 409 on a stale version, one audit event a request,
the monitoring timeline, the session page and the REMS record. Also: a refused "Start session" on the
chair board goes back to the chair board."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.core import clock
from kapclinic.patients.models import TimelineEvent
from kapclinic.scheduling.models import Appointment
from kapclinic.sessions.models import Administration, DeviceUse, DosingSession, SessionTransition
from kapclinic.sessions.selectors import monitoring_timeline
from kapclinic.sessions.tests.test_sessions import make_session, start_data, to_predose, url, v
from kapclinic.treatment.testing import make_dosing_ready

pytestmark = pytest.mark.django_db

SECONDS = "%Y-%m-%dT%H:%M:%S"


def local(at: dt.datetime) -> str:
    return at.astimezone().strftime(SECONDS)


def esketamine_dosing(client: Any, world: Any, mg: str = "84") -> DosingSession:
    """An esketamine session dosing now (the first device recorded at the first-dose time)."""
    s = make_session(world)
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    assert client.post(url(s, "dose"), {"version": v(s), "fixed_mg": mg}).status_code == 302
    client.force_login(world.nurse)
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 302
    s.refresh_from_db()
    return s


def device(client: Any, s: DosingSession, at: dt.datetime, version: int | None = None) -> Any:
    return client.post(
        url(s, "device"), {"dev-version": v(s) if version is None else version, "dev-at": local(at)}
    )


def complete(client: Any, s: DosingSession, reason: str | None = None) -> Any:
    data: dict[str, Any] = {"event": "start_monitoring", "version": v(s)}
    if reason is not None:
        data["partial_reason"] = reason
    return client.post(url(s, "transition"), data)


def test_first_device_is_the_first_dose_and_spacing_is_five_minutes(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = esketamine_dosing(client, world)
    first = s.first_dose_at
    assert first is not None
    (one,) = DeviceUse.objects.filter(administration__session=s)
    assert one.number == 1 and one.at == first and one.recorded_by == world.nurse
    clock_frozen.advance(dt.timedelta(minutes=6))
    # 4:59 after the first device: refused with a sentence, nothing stored
    r = device(client, s, first + dt.timedelta(minutes=4, seconds=59))
    body = r.content.decode()
    assert r.status_code == 400
    assert "is only 4 min 59 s after device 1" in body and "wait 5 minutes between devices" in body
    assert "[S7] ref §1.3" in body
    assert DeviceUse.objects.filter(administration__session=s).count() == 1
    # exactly 5:00: accepted
    assert device(client, s, first + dt.timedelta(minutes=5)).status_code == 302
    # device 3 must also wait 5 minutes after device 2 (now 6 min after the first)
    r = device(client, s, first + dt.timedelta(minutes=6))
    assert r.status_code == 400 and "only 1 min after device 2" in r.content.decode()
    clock_frozen.advance(dt.timedelta(minutes=4))
    assert device(client, s, first + dt.timedelta(minutes=10)).status_code == 302
    # the count cannot exceed the devices ordered
    clock_frozen.advance(dt.timedelta(minutes=5))
    r = device(client, s, clock.now())
    assert r.status_code == 400 and "all 3 ordered device(s) are already recorded" in r.content.decode()
    times = list(DeviceUse.objects.filter(administration__session=s).values_list("number", "at"))
    assert times == [
        (1, first),
        (2, first + dt.timedelta(minutes=5)),
        (3, first + dt.timedelta(minutes=10)),
    ]
    assert complete(client, s).status_code == 302
    s.refresh_from_db()
    assert s.state == "monitoring" and s.first_dose_at == first  # the clock's zero did not move
    # once dosing is complete no device can be added
    r = device(client, s, clock.now())
    assert r.status_code == 400 and "while the session is dosing" in r.content.decode()


def test_device_times_are_plausible_and_versioned(world: Any, client: Any, clock_frozen: Any) -> None:
    s = esketamine_dosing(client, world)
    assert s.first_dose_at is not None and s.checked_in_at is not None
    clock_frozen.advance(dt.timedelta(minutes=5))
    r = device(client, s, clock.now() + dt.timedelta(minutes=1))
    assert r.status_code == 400 and "is in the future" in r.content.decode()
    r = device(client, s, s.checked_in_at - dt.timedelta(minutes=1))
    assert r.status_code == 400 and "is before the patient checked in" in r.content.decode()
    r = client.post(url(s, "device"), {"dev-version": v(s), "dev-at": "not a time"})
    assert r.status_code == 400
    stale = v(s)
    assert device(client, s, clock.now(), version=stale).status_code == 302
    clock_frozen.advance(dt.timedelta(minutes=5))
    # a colleague's tablet still shows the old page: refused, nothing recorded twice
    r = device(client, s, clock.now(), version=stale)
    assert r.status_code == 409 and "Someone else changed this record" in r.content.decode()
    assert DeviceUse.objects.filter(administration__session=s).count() == 2
    # a therapist may not record the dose given
    client.force_login(world.therapist)
    assert device(client, s, clock.now()).status_code == 403


def test_one_audit_event_per_request(world: Any, client: Any, clock_frozen: Any) -> None:
    s = esketamine_dosing(client, world)
    clock_frozen.advance(dt.timedelta(minutes=5))
    before = AuditEvent.objects.count()
    assert device(client, s, clock.now()).status_code == 302
    events = list(AuditEvent.objects.order_by("-id")[: AuditEvent.objects.count() - before])
    assert [(e.action, e.detail) for e in events] == [("update", "device:2")]
    before = AuditEvent.objects.count()
    assert device(client, s, clock.now()).status_code == 400  # refused: 4 s ... 0 s after device 2
    assert AuditEvent.objects.count() == before + 1


def test_dosing_complete_needs_every_device_or_a_partial_reason(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = esketamine_dosing(client, world)
    clock_frozen.advance(dt.timedelta(minutes=5))
    assert device(client, s, clock.now()).status_code == 302
    page = client.get(url(s, "detail")).content.decode()
    assert "Record device 3" in page and "Reason for a partial dose" in page
    r = complete(client, s)
    assert r.status_code == 400
    assert "2 of 3 ordered devices are recorded" in r.content.decode()
    r = complete(client, s, reason="   ")
    assert r.status_code == 400
    s.refresh_from_db()
    assert s.state == "dosing"
    before_audit = AuditEvent.objects.count()
    r = complete(client, s, reason="Patient vomited after device 2 and declined the third")
    assert r.status_code == 302
    assert AuditEvent.objects.count() == before_audit + 1
    s.refresh_from_db()
    adm = Administration.objects.get(session=s)
    assert s.state == "monitoring"
    assert adm.partial_dose_reason == "Patient vomited after device 2 and declined the third"
    step = SessionTransition.objects.get(session=s, event="start_monitoring")
    assert step.reason == (
        "Partial dose, 2 of 3 devices: Patient vomited after device 2 and declined the third"
    )
    chart = TimelineEvent.objects.get(patient=world.patient, kind="sessions.partial_dose")
    assert chart.title == "Partial dose: 2 of 3 devices given" and chart.category == "clinical"
    page = client.get(url(s, "detail")).content.decode()
    assert "Partial dose" in page and "56 mg of the 84 mg ordered" in page
    # the monitoring timeline has each device on the clock from the first dose
    rows = [(r.minutes, r.kind, r.text) for r in monitoring_timeline(s) if r.kind == "Dose given"]
    assert rows == [
        (0, "Dose given", "Nasal device 1 of 3 used (two sprays, one per nostril)"),
        (5, "Dose given", "Nasal device 2 of 3 used (two sprays, one per nostril)"),
    ]
    steps = [r.text for r in monitoring_timeline(s) if r.kind == "Step"]
    assert steps[-1].startswith("Dosing finished, monitoring: Partial dose, 2 of 3 devices")


def test_device_times_on_the_monitoring_page_and_the_rems_record(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    s = esketamine_dosing(client, world, mg="56")
    first = s.first_dose_at
    assert first is not None
    clock_frozen.advance(dt.timedelta(minutes=7))
    assert device(client, s, first + dt.timedelta(minutes=6, seconds=30)).status_code == 302
    assert complete(client, s).status_code == 302
    page = client.get(url(s, "detail")).content.decode()
    t1, t2 = (
        x.astimezone().strftime("%H:%M:%S") for x in (first, first + dt.timedelta(minutes=6, seconds=30))
    )
    assert f"Device 1 at <strong>{t1}</strong>" in page and f"Device 2 at <strong>{t2}</strong>" in page
    assert "2 of 2 ordered devices recorded" in page
    assert "Nasal device 2 of 2 used" in page  # on the monitoring timeline too
    DosingSession.objects.filter(pk=s.pk).update(state="discharged", discharged_at=clock.now())
    rems = client.get(url(s, "rems")).content.decode()
    assert f"Device 1 at {t1}; Device 2 at {t2}" in rems
    assert "56 mg" in rems and "Partial dose" not in rems


def test_partial_dose_on_the_rems_record(world: Any, client: Any, clock_frozen: Any) -> None:
    s = esketamine_dosing(client, world)
    assert complete(client, s, reason="Patient declined after the first device").status_code == 302
    DosingSession.objects.filter(pk=s.pk).update(state="discharged", discharged_at=clock.now())
    rems = client.get(url(s, "rems")).content.decode()
    assert "Other: 28 mg" in rems
    assert "1 of 3 devices given (ordered 84 mg): Patient declined after the first device" in rems


# ---------------------------------------------------------------- IV, SL, IM


def iv_dosing(client: Any, world: Any) -> DosingSession:
    s = make_session(world, "ketamine-iv-racemic")
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    r = client.post(
        url(s, "dose"), {"version": v(s), "mg_per_kg": "0.5", "concentration": "10", "diluent_ml": "100"}
    )
    assert r.status_code == 302
    client.force_login(world.nurse)
    client.post(url(s, "double_check"))
    client.force_login(world.prescriber)
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 302
    client.force_login(world.nurse)
    s.refresh_from_db()
    return s


def stop(client: Any, s: DosingSession, at: dt.datetime, rate: str = "") -> Any:
    return client.post(
        url(s, "infusion_stop"),
        {"inf-version": v(s), "inf-stopped_at": local(at), "inf-actual_rate_ml_per_h": rate},
    )


def test_iv_infusion_start_stop_and_actual_rate(world: Any, client: Any, clock_frozen: Any) -> None:
    s = iv_dosing(client, world)
    start = s.first_dose_at
    assert start is not None
    assert not DeviceUse.objects.exists()  # no devices for an infusion
    r = complete(client, s)
    assert r.status_code == 400 and "record the time the infusion stopped" in r.content.decode()
    r = client.post(url(s, "device"), {"dev-version": v(s), "dev-at": local(start)})
    assert r.status_code == 400 and "not given with nasal devices" in r.content.decode()
    clock_frozen.advance(dt.timedelta(minutes=42))
    assert "Record infusion stop" in client.get(url(s, "detail")).content.decode()
    r = stop(client, s, start)
    assert r.status_code == 400 and "is not after its start" in r.content.decode()
    r = stop(client, s, clock.now() + dt.timedelta(minutes=5))
    assert r.status_code == 400 and "is in the future" in r.content.decode()
    r = stop(client, s, start + dt.timedelta(minutes=40), rate="0")
    assert r.status_code == 400 and "above 0" in r.content.decode()
    assert Administration.objects.get(session=s).infusion_stopped_at is None
    r = stop(client, s, start + dt.timedelta(minutes=41), rate="140")
    assert r.status_code == 302
    adm = Administration.objects.get(session=s)
    assert adm.infusion_stopped_at == start + dt.timedelta(minutes=41)
    assert adm.actual_rate_ml_per_h == Decimal("140") and adm.rate_ml_per_h == Decimal("155.3")
    assert adm.route_recorded_by == world.nurse
    r = stop(client, s, start + dt.timedelta(minutes=41))
    assert r.status_code == 400 and "already recorded" in r.content.decode()
    page = client.get(url(s, "detail")).content.decode()
    assert "140 mL/h (changed; ordered 155.3 mL/h)" in page
    assert "Infusion stopped; actual rate 140.0 mL/h" in page  # monitoring timeline
    rows = [(r.minutes, r.text) for r in monitoring_timeline(s) if r.kind == "Dose given"]
    assert rows == [(41, "Infusion stopped; actual rate 140.0 mL/h")]
    assert complete(client, s).status_code == 302


def test_iv_rate_unchanged_is_left_empty(world: Any, client: Any, clock_frozen: Any) -> None:
    s = iv_dosing(client, world)
    assert s.first_dose_at is not None
    clock_frozen.advance(dt.timedelta(minutes=40))
    assert stop(client, s, clock.now()).status_code == 302
    assert Administration.objects.get(session=s).actual_rate_ml_per_h is None
    assert "155.3 mL/h as ordered" in client.get(url(s, "detail")).content.decode()


def test_sl_lozenge_hold_and_spit_or_swallow(world: Any, client: Any, clock_frozen: Any) -> None:
    s = make_session(world, "ketamine-sl-lozenge")
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    assert client.post(url(s, "dose"), {"version": v(s), "fixed_mg": "200"}).status_code == 302
    client.force_login(world.nurse)
    r = client.post(
        url(s, "start_dosing"), {"version": v(s), "lot_number": "C7", "expiry_date": "2027-01-01"}
    )
    assert r.status_code == 302
    assert "Lozenge: record the hold time" in complete(client, s).content.decode()
    clock_frozen.advance(dt.timedelta(minutes=12))
    r = client.post(url(s, "lozenge"), {"loz-version": v(s), "loz-hold_minutes": 15, "loz-outcome": "spat"})
    assert (
        r.status_code == 400 and "15 min is longer than the 12 min since dosing started" in r.content.decode()
    )
    r = client.post(url(s, "lozenge"), {"loz-version": v(s), "loz-hold_minutes": 10})
    assert r.status_code == 400
    r = client.post(url(s, "lozenge"), {"loz-version": v(s), "loz-hold_minutes": 10, "loz-outcome": "spat"})
    assert r.status_code == 302
    adm = Administration.objects.get(session=s)
    assert adm.hold_minutes == 10 and adm.sl_outcome == "spat"
    page = client.get(url(s, "detail")).content.decode()
    assert "10 min, then spat out" in page and "Lozenge held 10 min, then spat out" in page
    assert complete(client, s).status_code == 302


def test_im_injection_time_is_the_first_dose(world: Any, client: Any, clock_frozen: Any) -> None:
    from kapclinic.sessions.models import ClinicProtocolSetting

    s = make_session(world, "ketamine-im-racemic")
    # the reference gives no IM maximum: the clinic sets one before a dose can be calculated
    ClinicProtocolSetting.objects.update_or_create(
        clinic=world.clinic,
        protocol_id="ketamine-im-racemic",
        key="dose.max_mg_per_kg",
        defaults={"value": "1"},
    )
    to_predose(client, world, s)
    client.force_login(world.prescriber)
    r = client.post(url(s, "dose"), {"version": v(s), "mg_per_kg": "0.5", "concentration": "50"})
    assert r.status_code == 302, r.content.decode()[:3000]
    client.force_login(world.nurse)
    client.post(url(s, "double_check"))
    client.force_login(world.prescriber)
    r = client.post(url(s, "start_dosing"), start_data(s))
    assert r.status_code == 302
    s.refresh_from_db()
    assert s.first_dose_at is not None
    page = client.get(url(s, "detail")).content.decode()
    assert f"<dt>Injected</dt><dd>{s.first_dose_at.astimezone():%H:%M:%S}" in page
    assert complete(client, s).status_code == 302


# ---------------------------------------------------------------- chair board: back with the refusal


def test_refused_start_on_the_chair_board_returns_to_the_chair_board(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    start = clock.now() + dt.timedelta(hours=1)
    appt = Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="dosing", starts_at=start,
        ends_at=start + dt.timedelta(minutes=180), staff=world.nurse, created_by=world.front_desk,
    )  # fmt: skip
    client.force_login(world.nurse)
    board = reverse("scheduling:chairs") + "?date=2026-03-02"
    start_url = reverse("sessions:start", kwargs={"appointment_id": appt.pk})
    r = client.post(start_url, {"next": board})
    assert r.status_code == 302 and r["Location"] == board
    (message,) = list(get_messages(r.wsgi_request))
    assert "no signed treatment plan" in str(message)
    # a foreign or scheme-relative address is ignored: back to the appointment page
    for unsafe in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        r = client.post(start_url, {"next": unsafe})
        assert r.status_code == 302
        assert r["Location"] == reverse("scheduling:detail", kwargs={"appointment_id": appt.pk})
    r = client.post(start_url)
    assert r["Location"] == reverse("scheduling:detail", kwargs={"appointment_id": appt.pk})
    # started: the session opens, whatever the next address
    make_dosing_ready(world.patient, world.prescriber)
    r = client.post(start_url, {"next": board})
    session = DosingSession.objects.get(appointment=appt)
    assert r["Location"] == url(session, "detail")
