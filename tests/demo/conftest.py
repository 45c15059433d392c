"""The demo clinic, seeded once for every test in this folder.

Seeding the whole demo takes a minute or more; each app's demo checks used to seed it on their own (six
seedings per run). Here it is seeded twice (the second run must change nothing) inside one transaction
that the last test of the folder rolls back; each test runs in its own savepoint within it, as any
pytest-django test does, so what a test writes is gone before the next. Under pytest-xdist the folder is
one group (``xdist_group("demo")`` with ``--dist loadgroup``, see the Makefile), so one worker seeds it.

The application clock is frozen at one instant for the seeding and for every test here, as it was for
the sessions demo check, so "today" in the demo is the same day for all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import transaction

from kapclinic.core import clock

INSTANT = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Seeded:
    first: dict[str, list[tuple[Any, ...]]]  # every table's rows after the first seeding
    second: dict[str, list[tuple[Any, ...]]]  # ... and after seeding again
    clock_put_back: bool  # the demo moves the application clock while it seeds, and puts it back


def _rows() -> dict[str, list[tuple[Any, ...]]]:
    return {
        m._meta.label: list(m._base_manager.order_by("pk").values_list())
        for m in apps.get_models()
        if m._meta.managed and not m._meta.proxy
    }


@pytest.fixture(scope="package")
def demo(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Seeded]:
    with django_db_blocker.unblock():
        clock.freeze(INSTANT)
        try:
            with transaction.atomic():
                call_command("seed_demo", "--quiet-logins")
                first = _rows()
                call_command("seed_demo", "--quiet-logins")
                seeded = Seeded(first=first, second=_rows(), clock_put_back=clock.now() == INSTANT)
                yield seeded
                transaction.set_rollback(True)
        finally:
            clock.reset()


@pytest.fixture(autouse=True)
def _demo_day(demo: Seeded) -> Iterator[None]:
    clock.freeze(INSTANT)
    yield
    clock.reset()
