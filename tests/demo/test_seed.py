"""Seeding the demo again changes nothing, and the demo leaves the application clock as it found it."""

from __future__ import annotations

import pytest

from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_seeding_again_changes_no_row_of_any_table(demo: Seeded) -> None:
    changed = [label for label, rows in demo.first.items() if demo.second[label] != rows]
    assert changed == []
    assert sum(len(rows) for rows in demo.first.values()) > 1000


def test_the_demo_puts_the_application_clock_back(demo: Seeded) -> None:
    assert demo.clock_put_back
