"""One way to call a service (issue 13): the actor and the object it acts on are positional, everything
else is keyword-only (after `*`), and `expected_version` is always passed by name:

    services.appointment_cancel(actor, appt, expected_version=form.cleaned_data["version"], reason=reason)

The walk covers every public function defined in a `kapclinic.<app>.services` module or package.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import kapclinic

# Modules left out of the walk, with the reason.
NOT_WALKED: dict[str, str] = {}

# Functions that keep a third positional parameter, with the reason.
ALLOWED: dict[str, str] = {
    "kapclinic.sessions.services.gate.session_transition": (
        "the Event is the transition itself: session_transition(actor, s, Event.CHECK_IN, expected_version=v)"
    ),
    "kapclinic.sessions.services.monitoring.vitals_record": (
        "the Reading is the one value recorded (a frozen dataclass of the vitals); appends never conflict"
    ),
    "kapclinic.sessions.services.discharge.missing_checks": (
        "a read of the sessions package, left to its owner: `record` is an already-read fact and should "
        "become keyword-only (CONVENTIONS: 'Reading a fact once')"
    ),
}

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _service_modules() -> Iterator[ModuleType]:
    for app in pkgutil.iter_modules(kapclinic.__path__):
        name = f"kapclinic.{app.name}.services"
        if not app.ispkg or name in NOT_WALKED or importlib.util.find_spec(name) is None:
            continue
        module = importlib.import_module(name)
        yield module
        for sub in pkgutil.iter_modules(getattr(module, "__path__", [])):
            yield importlib.import_module(f"{name}.{sub.name}")


def _public_functions() -> Iterator[tuple[str, Callable[..., Any]]]:
    for module in _service_modules():
        for name, value in vars(module).items():
            if inspect.isfunction(value) and not name.startswith("_") and value.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", value


def test_service_arguments_after_the_actor_and_the_object_are_keyword_only() -> None:
    functions = dict(_public_functions())
    assert len(functions) > 150, "the walk found too few service functions: is the discovery broken?"
    wrong = []
    for path, function in functions.items():
        params = inspect.signature(function).parameters.values()
        positional = [p.name for p in params if p.kind in POSITIONAL]
        if len(positional) > 2 and path not in ALLOWED:
            wrong.append(f"{path}({', '.join(positional)}): put `*` after {positional[1]!r}")
    assert not wrong, "\n".join(wrong)


def test_expected_version_is_always_passed_by_name() -> None:
    wrong = [
        path
        for path, function in _public_functions()
        if (p := inspect.signature(function).parameters.get("expected_version")) is not None
        and p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    assert not wrong, wrong


def test_the_allow_list_names_real_functions() -> None:
    functions = dict(_public_functions())
    assert [path for path in ALLOWED if path not in functions] == []
