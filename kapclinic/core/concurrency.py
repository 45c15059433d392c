"""Optimistic concurrency: two people editing the same record never overwrite each other unnoticed.

Editable models carry an integer `version`. Forms send the version they were rendered with; the save
is a conditional UPDATE ... WHERE version = <sent>. Zero rows updated means someone else saved first.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import F


class ConflictError(Exception):
    message = (
        "Someone else changed this record after you opened it. Your changes were not saved; "
        "reload the page to see the current version, then make your changes again."
    )

    def __str__(self) -> str:
        return self.message


class VersionedModel(models.Model):
    version = models.PositiveIntegerField(default=1)

    class Meta:
        abstract = True


def save_versioned(instance: VersionedModel, expected_version: int, fields: list[str]) -> None:
    """Write `fields` of `instance` only if the stored version is still `expected_version`."""
    model = type(instance)
    values: dict[str, Any] = {name: getattr(instance, name) for name in fields}
    for name in fields:
        field = model._meta.get_field(name)
        if isinstance(field, models.ForeignKey):
            values.pop(name)
            values[field.attname] = getattr(instance, field.attname)
    updated = model._default_manager.filter(pk=instance.pk, version=expected_version).update(
        **values, version=F("version") + 1
    )
    if updated != 1:
        raise ConflictError()
    instance.version = expected_version + 1
