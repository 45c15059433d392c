"""Every resource is validated with fhir.resources before it leaves (docs/fhir-api.md#validation).

Validation is a pure function of a resource's JSON: the same content validated by the same models gives
the same answer. So each distinct resource content is validated once per process and remembered by a
digest of its canonical JSON (bounded, least recently used first out); a resource whose content changed
(a new value, a new meta.lastUpdated) has a new digest and is validated again. Only contents that passed
are remembered: a malformed resource raises every time.

A Bundle is validated as its shell (type, total, links, entry fullUrl/search) plus each entry's resource
on its own, which is what `Bundle.model_validate` does to it, without importing each entry's model class
again per entry.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir_core.fhirabstractmodel import FHIRAbstractModel

# Distinct resource contents remembered per process (about 100 bytes each).
CACHE_SIZE = 50_000

_seen: OrderedDict[bytes, None] = OrderedDict()
_lock = threading.Lock()


@cache
def model_class(resource_type: str) -> type[FHIRAbstractModel]:
    """The fhir.resources R4B model of a resource type (ValueError for an unknown type)."""
    return get_fhir_model_class(resource_type)


def _digest(resource: dict[str, Any]) -> bytes:
    canonical = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode(), digest_size=16).digest()


def validate_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """Validate one resource (pydantic ValidationError if malformed); return it unchanged."""
    key = _digest(resource)
    with _lock:
        if key in _seen:
            _seen.move_to_end(key)
            return resource
    model_class(resource["resourceType"]).model_validate(resource)
    with _lock:
        _seen[key] = None
        while len(_seen) > CACHE_SIZE:
            _seen.popitem(last=False)
    return resource


def validate_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    """Validate a Bundle and every resource in it; return it unchanged."""
    entries = bundle.get("entry", [])
    for entry in entries:
        if "resource" in entry:
            validate_resource(entry["resource"])
    shell = {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries]}
    if not entries:
        del shell["entry"]
    Bundle.model_validate(shell)
    return bundle


def forget() -> None:
    """Empty the memory of validated contents (tests)."""
    with _lock:
        _seen.clear()
