"""Drafts of long forms: saved as the author types, restored when they open the form again, deleted when
the form is saved or the author discards them. Audit events name the form, never the values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.drafts.models import Draft

if TYPE_CHECKING:
    from kapclinic.patients.models import Patient

MAX_FIELDS = 1000
MAX_VALUE_CHARS = 50_000  # the longest field of these forms (a consent document's body)
MAX_TOTAL_CHARS = 250_000


def clean_draft_data(data: Any) -> dict[str, str | list[str]]:
    """A draft holds field name -> text (or a list of texts for checkboxes): nothing else."""
    if not isinstance(data, dict):
        raise DomainError("A draft is an object of field names and values.")
    if len(data) > MAX_FIELDS:
        raise DomainError(f"A draft holds at most {MAX_FIELDS} fields.")
    total = 0
    cleaned: dict[str, str | list[str]] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise DomainError("Each field name is a text of 1 to 200 characters.")
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise DomainError(f"The value of {name[:40]!r} is not text.")
        for v in values:
            if len(v) > MAX_VALUE_CHARS:
                raise DomainError(f"The value of {name[:40]!r} is longer than {MAX_VALUE_CHARS} characters.")
            total += len(v)
        cleaned[name] = value
    if total > MAX_TOTAL_CHARS:
        raise DomainError(f"A draft holds at most {MAX_TOTAL_CHARS} characters in all.")
    return cleaned


@transaction.atomic
def draft_save(actor: Actor, key: str, *, object_id: int, data: Any, patient: Patient | None) -> Draft:
    cleaned = clean_draft_data(data)
    draft, _created = Draft.objects.update_or_create(
        user=actor.require_user(),
        key=key,
        object_id=object_id,
        defaults={"data": cleaned, "updated_at": clock.now(), "clinic": actor.clinic, "patient": patient},
    )
    if patient is not None:
        record_event(actor, "update", patient=patient, obj=draft, object_type="draft", detail=key)
    return draft


@transaction.atomic
def draft_discard(actor: Actor, key: str, *, object_id: int, patient: Patient | None) -> bool:
    deleted, _ = Draft.objects.filter(user=actor.require_user(), key=key, object_id=object_id).delete()
    if deleted and patient is not None:
        record_event(actor, "update", patient=patient, object_type="draft", detail=f"{key} discarded")
    return bool(deleted)


def draft_clear(user: Any, key: str, *, object_id: int = 0) -> None:
    """The form was saved: its author's draft has served. Called by the form's view after its service
    (which audits the save itself)."""
    Draft.objects.filter(user=user, key=key, object_id=object_id).delete()
