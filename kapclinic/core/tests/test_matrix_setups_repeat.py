"""Every access-matrix setup can run again on the same world (issue 12's fuzz test draws URLs many times
for one world). A setup that reuses a unique value, or books an appointment over its own earlier one
(PostgreSQL's overlap constraints), fails here by name instead of making the fuzz test flaky."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from kapclinic.core.tests.test_access_matrix import MATRIX

WITH_SETUP = sorted(name for name, entry in MATRIX.items() if entry.setup is not None)


@pytest.mark.django_db
def test_every_setup_runs_twice_on_one_world(world: Any) -> None:
    failures = []
    for name in WITH_SETUP:
        setup = MATRIX[name].setup
        assert setup is not None
        for attempt in (1, 2):
            try:
                with transaction.atomic():
                    setup(world)
            except Exception as exc:  # the failure is the finding: name the URL and the exception
                failures.append(f"{name} (run {attempt}): {type(exc).__name__}: {exc!s:.160}")
                break
    assert not failures, "\n".join(failures)
