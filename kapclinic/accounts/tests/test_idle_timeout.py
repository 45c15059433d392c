"""Staff are signed out after STAFF_IDLE_TIMEOUT_MINUTES of inactivity, counted from their last request.

Before, the last-activity time was written at most once a minute, so at the 1-minute setting a nurse
active every 13 s was signed out at about a minute (activity between two writes did not count).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import override_settings

PAGE = "/patients/"
STEP = dt.timedelta(seconds=13)


def _signed_in(client: Any, **headers: str) -> bool:
    response = client.get(PAGE, **headers)
    if response.status_code == 302:
        assert "/account/login/" in response["Location"]
        return False
    assert response.status_code == 200
    return True


@pytest.mark.parametrize("minutes", [1, 15])
def test_activity_every_13_seconds_keeps_staff_signed_in(
    minutes: int, world: Any, client: Any, clock_frozen: Any
) -> None:
    with override_settings(STAFF_IDLE_TIMEOUT_MINUTES=minutes):
        client.force_login(world.nurse)
        assert _signed_in(client)
        active_for = max(dt.timedelta(minutes=5), dt.timedelta(minutes=2 * minutes))
        elapsed = dt.timedelta(0)
        while elapsed < active_for:
            clock_frozen.advance(STEP)
            elapsed += STEP
            assert _signed_in(client), f"signed out after {elapsed} of activity every 13 s"


@pytest.mark.parametrize("minutes", [1, 15])
def test_idle_for_the_timeout_stays_signed_in_one_second_more_signs_out(
    minutes: int, world: Any, client: Any, clock_frozen: Any
) -> None:
    limit = dt.timedelta(minutes=minutes)
    with override_settings(STAFF_IDLE_TIMEOUT_MINUTES=minutes):
        client.force_login(world.nurse)
        for _ in range(7):  # some activity, so the last request falls between two session writes
            clock_frozen.advance(STEP)
            assert _signed_in(client)
        clock_frozen.advance(limit)  # exactly the timeout since the last request: still in
        assert _signed_in(client)
        clock_frozen.advance(limit + dt.timedelta(seconds=1))
        assert not _signed_in(client)
        clock_frozen.advance(dt.timedelta(seconds=1))
        assert not _signed_in(client)  # really signed out


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=1)
def test_status_polls_are_not_activity(world: Any, client: Any, clock_frozen: Any) -> None:
    client.force_login(world.nurse)
    assert _signed_in(client)
    for _ in range(4):  # 52 s of polls only
        clock_frozen.advance(STEP)
        assert _signed_in(client, HTTP_HX_TRIGGER_NAME="poll")
    clock_frozen.advance(dt.timedelta(seconds=9))  # 61 s since the last real request
    assert not _signed_in(client, HTTP_HX_TRIGGER_NAME="poll")


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=1)
def test_a_last_seen_cookie_from_another_session_or_forged_does_not_count(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    from django.test import Client

    from kapclinic.accounts.middleware import _last_seen_cookie_name

    name = _last_seen_cookie_name()
    client.force_login(world.nurse)
    assert _signed_in(client)
    other = Client()
    other.force_login(world.nurse)
    clock_frozen.advance(dt.timedelta(seconds=50))
    assert other.get(PAGE).status_code == 200  # the other session's fresh cookie
    clock_frozen.advance(dt.timedelta(seconds=20))  # 70 s idle in the first session
    client.cookies[name] = other.cookies[name].value
    assert not _signed_in(client)

    client.force_login(world.nurse)
    assert _signed_in(client)
    stamp, _, signature = client.cookies[name].value.rpartition(":")
    client.cookies[name] = f"{float(stamp) + 3600!r}:{signature}"  # a later time, same signature
    clock_frozen.advance(dt.timedelta(seconds=61))
    assert not _signed_in(client)


@override_settings(STAFF_IDLE_TIMEOUT_MINUTES=1)
def test_without_the_cookie_the_session_record_still_signs_out(
    world: Any, client: Any, clock_frozen: Any
) -> None:
    from kapclinic.accounts.middleware import _last_seen_cookie_name

    client.force_login(world.nurse)
    for _ in range(5):
        clock_frozen.advance(STEP)
        assert _signed_in(client)
    del client.cookies[_last_seen_cookie_name()]
    clock_frozen.advance(dt.timedelta(seconds=61))
    assert not _signed_in(client)
