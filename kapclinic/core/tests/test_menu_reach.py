"""Every clinic-level page a staff role may open is reachable from its menu.

The pages come from the access matrix (GET, no URL arguments, 200 for the role); the crawl starts at the
dashboard, follows the main menu and the links on each menu page, and from there only links to other
such pages (a list page's "new" button), three clicks at most.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from django.urls import reverse

APPS = ("accounts", "audit", "consent", "core", "intake", "interop", "measures", "notes", "patients",
        "portal", "public", "scheduling", "sessions", "treatment", "inventory", "documents",
        "billing", "fhirapi", "conversations", "notifications")  # fmt: skip
# Reached from the header (two-factor, sign-out) or from an email, or not a page for people.
NOT_IN_MENUS = {
    "core:healthz",
    "fhirapi:metadata",
    "fhirapi:smart_configuration",
    "fhirapi:openid_configuration",
    "fhirapi:jwks",
    "notifications:badge",
}  # JSON for machines; the badge is the bell's htmx fragment
HREF = re.compile(r'href="(/[^"#?]*)')


def _pages_for(role: str) -> set[str]:
    names = set()
    for app in APPS:
        matrix = importlib.import_module(f"kapclinic.{app}.access_matrix").MATRIX
        for name, entry in matrix.items():
            if entry.method != "get" or entry.kwargs or entry.setup or entry.query:
                continue
            if name.startswith(("public:", "accounts:")) or name in NOT_IN_MENUS:
                continue
            if entry.expect.get(role) == 200:
                names.add(name)
    return names


def _links(client: Any, path: str) -> set[str]:
    response = client.get(path)
    if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
        return set()
    return set(HREF.findall(response.content.decode()))


@pytest.mark.parametrize("role", ["admin", "prescriber", "therapist", "nurse", "front_desk"])
def test_every_clinic_page_of_a_role_is_reachable_from_its_menu(world: Any, client: Any, role: str) -> None:
    client.force_login(getattr(world, role))
    first = _links(client, reverse("core:home"))
    reached = set(first)
    for path in sorted(first):
        if path.startswith(("/static/", "/accounts/")):
            continue
        reached |= _links(client, path)
    pages = {reverse(name): name for name in _pages_for(role)}
    for path in sorted(reached & pages.keys()):
        reached |= _links(client, path)
    missing = sorted(name for path, name in pages.items() if path not in reached)
    assert not missing, f"{role} cannot reach these pages from the menu: {missing}"
