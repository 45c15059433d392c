"""Per-request memo: values live for one request only and a settings change is read back at once."""

from __future__ import annotations

from typing import Any

from kapclinic.core import request_cache


def test_outside_a_request_nothing_is_remembered() -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 1

    assert request_cache.remember("k", compute) == 1
    assert request_cache.remember("k", compute) == 1
    assert len(calls) == 2


def test_inside_a_request_each_key_is_computed_once_until_forgotten() -> None:
    calls: list[str] = []

    def compute(tag: str) -> str:
        calls.append(tag)
        return tag

    token = request_cache.open_memo()
    try:
        assert request_cache.remember(("a", 1), lambda: compute("a")) == "a"
        assert request_cache.remember(("a", 1), lambda: compute("again")) == "a"
        assert request_cache.remember(("b", 1), lambda: compute("b")) == "b"
        request_cache.forget()
        assert request_cache.remember(("a", 1), lambda: compute("fresh")) == "fresh"
    finally:
        request_cache.close_memo(token)
    assert calls == ["a", "b", "fresh"]
    assert request_cache.remember(("a", 1), lambda: "outside") == "outside"


def test_measure_settings_are_read_once_per_request(world: Any, django_assert_num_queries: Any) -> None:
    from kapclinic.measures.services import measure_settings, measure_settings_apply

    token = request_cache.open_memo()
    try:
        first = measure_settings(world.clinic)
        with django_assert_num_queries(0):
            assert measure_settings(world.clinic.pk) is first
        version = first.version
        measure_settings_apply(
            world.clinic, {"alert_overdue_hours": 12}, expected_version=version, user=world.prescriber
        )
        assert measure_settings(world.clinic).alert_overdue_hours == 12  # read back in the same request
    finally:
        request_cache.close_memo(token)
