"""Every URL pattern x every persona answers as the app's access_matrix.py says.

The same walk checks the audit trail of refusals: every 403 to a signed-in persona writes exactly one
"denied" event in that request (naming world.patient when the URL is about that patient and the asker
is staff of its clinic or the patient). Some refusals answer otherwise and are audited too (a process
note that does not exist for the asker: 404; signing a note one may not sign: redirect with a message).
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from kapclinic.testing.matrix import PERSONAS, STAFF, Entry


def _url_names(resolver: URLResolver, prefix: str = "") -> set[str]:
    names: set[str] = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            ns = f"{prefix}{pattern.namespace}:" if pattern.namespace else prefix
            names |= _url_names(pattern, ns)
        elif isinstance(pattern, URLPattern):
            if pattern.name is None:
                raise AssertionError(f"URL pattern {pattern.pattern} has no name; every URL needs one.")
            names.add(prefix + pattern.name)
    return names


def _matrix() -> dict[str, Entry]:
    merged: dict[str, Entry] = {}
    for config in apps.get_app_configs():
        if not config.name.startswith("kapclinic."):
            continue
        try:
            module = importlib.import_module(f"{config.name}.access_matrix")
        except ModuleNotFoundError as exc:
            if exc.name == f"{config.name}.access_matrix":
                continue
            raise
        for name, entry in module.MATRIX.items():
            assert name not in merged, f"{name} is declared twice in access matrices"
            merged[name] = entry
    return merged


ALL_URLS = sorted(_url_names(get_resolver()))
MATRIX = _matrix()


def test_every_url_has_a_matrix_entry() -> None:
    missing = [name for name in ALL_URLS if name not in MATRIX]
    stale = [name for name in MATRIX if name not in ALL_URLS]
    assert not missing, f"URLs without an authorization-matrix entry: {missing}"
    assert not stale, f"Matrix entries for URLs that do not exist: {stale}"


def test_every_entry_names_every_persona() -> None:
    for name, entry in MATRIX.items():
        assert set(entry.expect) == set(PERSONAS), f"{name}: personas {set(PERSONAS) ^ set(entry.expect)}"


@pytest.mark.parametrize("name", ALL_URLS)
def test_matrix(name: str, world: Any, client: Any) -> None:
    from django.db.models import Max
    from django.urls import reverse

    from kapclinic.audit.models import AuditEvent

    entry = MATRIX[name]
    kwargs = entry.kwargs(world) if entry.kwargs else {}
    if entry.setup:
        kwargs.update(entry.setup(world))
    url = reverse(name, kwargs=kwargs) + (f"?{entry.query}" if entry.query else "")
    about_patient = kwargs.get("patient_id") == world.patient.pk
    failures = []
    for persona in PERSONAS:
        client.logout()
        user = world.persona(persona)
        if user is not None:
            client.force_login(user)
        data = entry.data(world) if entry.data else {}
        before = AuditEvent.objects.aggregate(last=Max("pk"))["last"] or 0
        response = getattr(client, entry.method)(url, data)
        denied = list(
            AuditEvent.objects.filter(pk__gt=before, action="denied").values_list("patient_id", flat=True)
        )
        if user is not None and response.status_code == 403:
            if len(denied) != 1:
                failures.append(f"{persona}: 403 wrote {len(denied)} 'denied' audit events, not one")
            elif about_patient and persona in (*STAFF, "patient_user") and denied[0] != world.patient.pk:
                failures.append(f"{persona}: the 'denied' audit event does not name the patient")
            elif persona == "other_patient_user" and denied[0] not in (None, world.other_patient.pk):
                failures.append(f"{persona}: the 'denied' audit event names another patient")
        if response.status_code != entry.expect[persona]:
            failures.append(f"{persona}: expected {entry.expect[persona]}, got {response.status_code}")
        elif persona == "anonymous" and response.status_code == 302 and entry.expect[persona] == 302:
            location = response.headers.get("Location", "")
            if "/account/login/" not in location and not entry.note.startswith("redirect-ok"):
                failures.append(f"anonymous: redirected to {location}, not to the login page")
    assert not failures, f"{name} ({url}): " + "; ".join(failures)
