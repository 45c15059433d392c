"""Clinic settings page: protocol values and measure settings with cited defaults; changes need a reason,
are recorded with who/when/why, audited once, and refuse unsafe or stale edits."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from kapclinic.audit.models import AuditEvent
from kapclinic.measures.models import MeasureSettings
from kapclinic.sessions.models import ClinicProtocolSetting, ClinicSettingChange
from kapclinic.sessions.services import clinic_protocol

pytestmark = pytest.mark.django_db

PAGE = "sessions:settings"


def _proto_post(client: Any, protocol: str, values: dict[str, str], reason: str = "", stamp: int = 0) -> Any:
    page = client.get(reverse(PAGE) + f"?protocol={protocol}")
    form = page.context["protocol_form"]
    data = {f"v_{f.key}": (form.initial.get(f"v_{f.key}") or form.fields[f"v_{f.key}"].initial or "")
            for f in form.settable}  # fmt: skip
    data.update({f"v_{k}": v for k, v in values.items()})
    data["stamp"] = stamp if stamp else form.initial["stamp"]
    data["reason"] = reason
    return client.post(reverse("sessions:settings_protocol", kwargs={"protocol_id": protocol}), data)


def test_page_shows_cited_defaults_and_is_read_only_for_nurse(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    r = client.get(reverse(PAGE) + "?protocol=esketamine-in-trd")
    body = r.content.decode()
    assert r.status_code == 200
    assert "Minimum observation after the end of administration" in body
    assert "<strong>120 min</strong>" in body
    assert "may be lengthened, never shortened" in body
    assert "Save protocol settings" not in body and 'name="v_observation.minimum_minutes"' not in body
    r = client.post(reverse("sessions:settings_protocol", kwargs={"protocol_id": "esketamine-in-trd"}), {})
    assert r.status_code == 403


def test_prescriber_sets_iv_minimum_with_reason_recorded_and_audited(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    ClinicProtocolSetting.objects.filter(clinic=world.clinic).delete()  # a medical director who set nothing
    client.force_login(world.prescriber)
    assert clinic_protocol(world.clinic.pk, "ketamine-iv-racemic").observation.minimum_minutes.value is None
    r = _proto_post(client, "ketamine-iv-racemic", {"observation.minimum_minutes": "120"}, reason="")
    assert r.status_code == 400 and "Reason is required" in r.content.decode()
    assert not ClinicProtocolSetting.objects.filter(clinic=world.clinic).exists()
    before = AuditEvent.objects.count()
    r = _proto_post(
        client,
        "ketamine-iv-racemic",
        {"observation.minimum_minutes": "120"},
        reason="Medical director policy",
    )
    assert r.status_code == 302
    assert AuditEvent.objects.count() == before + 2  # the page view that built the form, and the change
    latest = AuditEvent.objects.order_by("-id").first()
    assert latest is not None and latest.action == "admin"
    row = ClinicProtocolSetting.objects.get(clinic=world.clinic, key="observation.minimum_minutes")
    assert (row.value, row.set_by) == ("120", world.prescriber)
    change = ClinicSettingChange.objects.get()
    assert (change.old_value, change.new_value, change.reason, change.by) == (
        "",
        "120",
        "Medical director policy",
        world.prescriber,
    )
    minimum = clinic_protocol(world.clinic.pk, "ketamine-iv-racemic").observation.minimum_minutes
    assert minimum.value is not None and minimum.value.value == 120 and minimum.source == "clinic setting"
    page = client.get(reverse(PAGE) + "?protocol=ketamine-iv-racemic").content.decode()
    assert "Medical director policy" in page
    # clearing it goes back to "no value" and is recorded too
    r = _proto_post(client, "ketamine-iv-racemic", {"observation.minimum_minutes": ""}, reason="Undo")
    assert r.status_code == 302 and not ClinicProtocolSetting.objects.filter(clinic=world.clinic).exists()
    assert ClinicSettingChange.objects.count() == 2


def test_unsafe_and_stale_edits_are_refused(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.prescriber)
    r = _proto_post(client, "esketamine-in-trd", {"observation.minimum_minutes": "90"}, reason="Busy")
    body = r.content.decode()
    assert r.status_code == 400 and "cannot be shorter than the 120 min the protocol requires" in body
    r = _proto_post(client, "esketamine-in-trd", {"thresholds.hr_above": "abc"}, reason="x")
    assert r.status_code == 400 and "must be a whole number" in r.content.decode()
    assert not ClinicSettingChange.objects.exists()
    ok = _proto_post(client, "esketamine-in-trd", {"thresholds.hr_above": "120"}, reason="Tachycardia alert")
    assert ok.status_code == 302
    # a second prescriber saving from a page loaded before that change
    r = _proto_post(client, "esketamine-in-trd", {"thresholds.hr_below": "45"}, reason="x", stamp=-1)
    assert r.status_code == 409 and "Someone else changed" in r.content.decode()
    assert ClinicSettingChange.objects.count() == 1


def test_measure_settings_change_is_versioned_and_read_by_the_gate(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    client.force_login(world.prescriber)
    page = client.get(reverse(PAGE))
    initial = page.context["measures_form"].initial
    data = {k: ("" if v is None else v) for k, v in initial.items()}
    data.update({"pre_session_phq9_window": "same_day", "reason": ""})
    url = reverse("sessions:settings_measures")
    r = client.post(url, data)
    assert r.status_code == 400 and "Reason is required" in r.content.decode()
    assert not MeasureSettings.objects.filter(clinic=world.clinic).exists()
    data["pcl5_probable_ptsd_min"] = 25
    data["reason"] = "Align with policy"
    r = client.post(url, data)
    assert r.status_code == 400 and "between 31 and 33" in r.content.decode()
    data["pcl5_probable_ptsd_min"] = 33
    r = client.post(url, data)
    assert r.status_code == 302
    ms = MeasureSettings.objects.get(clinic=world.clinic)
    assert ms.pre_session_phq9_window == "same_day" and ms.version == 2 and ms.updated_by == world.prescriber
    change = ClinicSettingChange.objects.get(area="measures")
    assert (change.key, change.old_value, change.new_value) == (
        "pre_session_phq9_window",
        "since_previous_session",
        "same_day",
    )
    r = client.post(url, data)  # same version again: stale
    assert r.status_code == 409


@pytest.mark.parametrize("n", [1, 20])
def test_settings_page_query_count(
    world: Any, client: Any, clock_frozen: Any, django_assert_max_num_queries: Any, n: int
) -> None:
    from kapclinic.core import clock

    for i in range(n):
        ClinicSettingChange.objects.create(
            clinic=world.clinic, area="protocol", protocol_id="esketamine-in-trd", key="thresholds.hr_above",
            old_value="", new_value=str(100 + i), reason="r", by=world.prescriber, at=clock.now(),
        )  # fmt: skip
    client.force_login(world.prescriber)
    # 21 + 2 for the safety-alert section: its change stamp and the prescribers offered as on-call
    with django_assert_max_num_queries(23):
        assert client.get(reverse(PAGE)).status_code == 200
