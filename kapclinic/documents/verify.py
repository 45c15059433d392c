"""Does the documents storage match the database? (`manage.py documents verify`)

Every file field kept in the documents storage (chart documents, message attachments, the clinic's logo,
and any later one: found from the models, not listed here) names a stored file; every stored file should
be named by one row. A file without a row is an orphan (left by a failure the cleanup could not undo, or
by a restore of the database without the storage); a row whose file is gone needs the backup. Output is
storage names and row ids only: names are random (documents.models.new_storage_name), never a person's
file name, so nothing here is PHI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.core.files.storage import Storage
from django.db import models
from django.utils import timezone

from kapclinic.documents.models import document_storage


@dataclass
class Report:
    files: int = 0
    rows: int = 0
    orphans: list[str] = field(default_factory=list)
    #: (model label, row id, storage name) of rows whose file is not in the storage.
    missing: list[tuple[str, int, str]] = field(default_factory=list)
    #: Orphans younger than the grace period (perhaps an upload still being saved): not counted.
    recent: int = 0

    @property
    def ok(self) -> bool:
        return not self.orphans and not self.missing


def file_fields() -> list[tuple[type[models.Model], str]]:
    """Every (model, field name) whose FileField keeps its files in the documents storage."""
    found = []
    storage = document_storage()
    for model in apps.get_models():
        for f in model._meta.get_fields():
            if isinstance(f, models.FileField) and f.storage is storage:
                found.append((model, f.name))
    return found


def stored_names(storage: Storage, prefix: str = "") -> Iterator[str]:
    try:
        folders, files = storage.listdir(prefix)
    except FileNotFoundError:  # an empty storage that was never written to
        return
    for name in files:
        yield prefix + name
    for folder in folders:
        yield from stored_names(storage, f"{prefix}{folder}/")


def verify(*, grace: dt.timedelta = dt.timedelta(minutes=10)) -> Report:
    storage = document_storage()
    report = Report()
    rows: dict[str, tuple[str, int]] = {}
    for model, name in file_fields():
        label = model._meta.label_lower
        for pk, stored in model._default_manager.exclude(**{name: ""}).values_list("pk", name):
            rows[stored] = (label, pk)
    report.rows = len(rows)
    on_disk = set()
    for stored in stored_names(storage):
        on_disk.add(stored)
        if stored in rows:
            continue
        if grace and timezone.now() - storage.get_modified_time(stored) < grace:
            report.recent += 1
        else:
            report.orphans.append(stored)
    report.files = len(on_disk)
    report.orphans.sort()
    report.missing = sorted(
        (label, pk, stored) for stored, (label, pk) in rows.items() if stored not in on_disk
    )
    return report
