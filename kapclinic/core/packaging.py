"""What a server installation holds, and a clear refusal when a command needs what it does not.

`pip install kapclinic` (requirements/runtime.lock) ships the clinic without its development parts: Faker
(the `demo` and `dev` extras), the test helpers (`kapclinic.testing`) and the benchmark's data generator
(`kapclinic.benchdata`) stay in the repository (pyproject.toml, `[tool.setuptools.packages.find]`).
"""

from __future__ import annotations

import importlib.util

from django.core.management.base import CommandError


def require_extra(module: str, extra: str, what: str) -> None:
    """Raise CommandError with a sentence when `module` is not installed (a server without `extra`)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        raise CommandError(
            f"{what} needs {module}, which this installation does not include: install the project with "
            f"its '{extra}' extra (pip install 'kapclinic[{extra}]') or run it from a source checkout."
        )
