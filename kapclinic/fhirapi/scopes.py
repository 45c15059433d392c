"""SMART App Launch v2 scopes (docs/fhir-api.md#scopes, [D1]).

Grammar: `patient|user|system` `/` `ResourceType|*` `.` a subset of `cruds` in that order; v1 suffixes
map `.read` -> `.rs`, `.write` -> `.cud`, `.*` -> `.cruds`. This server is read-only: only `r` and `s`
are granted. Non-resource scopes: launch, launch/patient, openid, fhirUser, offline_access,
online_access. Fine-grained `?param=value` filters are experimental in the spec and refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from oauth2_provider.scopes import BaseScopes

CONTEXTS = ("patient", "user", "system")
OTHER_SCOPES = {
    "launch": "Launch from the clinic's record",
    "launch/patient": "Ask which patient (standalone launch)",
    "openid": "Know who you are",
    "fhirUser": "Know your user record",
    "offline_access": "Keep access while you are away",
    "online_access": "Keep access while you are signed in",
}
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(\*|read|write|c?r?u?d?s?)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True)
class ResourceScope:
    context: str
    resource_type: str  # or "*"
    permissions: str  # subset of "cruds"

    def covers(self, other: ResourceScope) -> bool:
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and set(other.permissions) <= set(self.permissions)
        )


def parse_scope(scope: str) -> ResourceScope | None:
    """A resource scope, or None for a non-resource one; ValueError when it is not valid."""
    if scope in OTHER_SCOPES:
        return None
    match = _SCOPE.match(scope)
    if match is None or not match[3]:
        raise ValueError(f"{scope[:60]!r} is not a SMART scope this server knows.")
    return ResourceScope(match[1], match[2], _V1.get(match[3], match[3]))


def parse_scopes(text: str | list[str]) -> tuple[list[ResourceScope], set[str]]:
    names = text.split() if isinstance(text, str) else list(text)
    resource: list[ResourceScope] = []
    other: set[str] = set()
    for name in names:
        parsed = parse_scope(name)
        if parsed is None:
            other.add(name)
        else:
            resource.append(parsed)
    return resource, other


def allowed(requested: list[str], permitted: str) -> bool:
    """Is every requested scope valid and covered by the client's permitted scopes?"""
    try:
        wanted, wanted_other = parse_scopes(requested)
        have, have_other = parse_scopes(permitted)
    except ValueError:
        return False
    if not wanted_other <= have_other | {"openid", "fhirUser", "offline_access", "online_access"}:
        return False
    return all(any(h.covers(w) for h in have) for w in wanted)


def describe(scope: str) -> str:
    if scope in OTHER_SCOPES:
        return OTHER_SCOPES[scope]
    try:
        parsed = parse_scope(scope)
    except ValueError:
        return scope
    assert parsed is not None
    what = "all record types" if parsed.resource_type == "*" else f"{parsed.resource_type} records"
    whose = {"patient": "of one patient", "user": "you can see", "system": "of the whole clinic"}[
        parsed.context
    ]
    verbs = " and ".join(v for p, v in (("r", "read"), ("s", "search")) if p in parsed.permissions)
    return f"{verbs.capitalize() or 'Use'} {what} {whose}"


class _Descriptions(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return describe(key)


class SmartScopes(BaseScopes):  # type: ignore[misc]  # django-oauth-toolkit ships no type hints
    """django-oauth-toolkit scopes backend: every valid SMART scope is known (described on the fly)."""

    def get_all_scopes(self) -> dict[str, str]:
        return _Descriptions(OTHER_SCOPES)

    def get_available_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        client = getattr(application, "fhir_client", None)
        return client.scopes.split() if client is not None else []

    def get_default_scopes(
        self, application: Any = None, request: Any = None, *args: Any, **kwargs: Any
    ) -> list[str]:
        return []
