"""Bulk loading with pre-assigned primary keys.

Rows are plain tuples in the model's concrete-field order; every field the generator does not pass
gets the model field's default, so columns that other apps add later (with a default) need no change
here. Flushing uses COPY on PostgreSQL and `executemany` on SQLite inside the caller's transaction;
foreign keys are deferred on both backends, so tables may be flushed in any order within it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models

UTC = dt.UTC
FLUSH_ROWS = 20_000


def _sqlite_datetime(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    text = str(value)
    if text.endswith("+00:00"):  # the generators work in UTC: the fast path
        return text[:-6]
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return str(value)


def _json(value: Any) -> Any:
    return None if value is None else json.dumps(value)


def _str(value: Any) -> Any:
    return None if value is None else str(value)


class Table:
    """Buffered rows of one model."""

    def __init__(self, loader: BulkLoader, model: type[models.Model]) -> None:
        self.loader = loader
        self.model = model
        meta = model._meta
        fields = [f for f in meta.concrete_fields if not getattr(f, "generated", False)]
        self.fields = fields
        self.columns = [f.column for f in fields]
        self.index = {f.attname: i for i, f in enumerate(fields)}
        self.index.update({f.name: i for i, f in enumerate(fields)})
        self.pk_pos = self.index[meta.pk.attname]
        vendor = connection.vendor
        self.template: list[Any] = []
        self.callables: list[tuple[int, str, Callable[[], Any]]] = []
        self.converters: list[tuple[int, Callable[[Any], Any]]] = []
        for i, f in enumerate(fields):
            if f.has_default() and callable(f.default):
                self.callables.append((i, f.attname, f.default))
                self.template.append(None)
            else:
                self.template.append(None if f.primary_key else f.get_default())
            internal = f.get_internal_type()
            if internal == "JSONField":
                self.converters.append((i, _json))
            elif vendor == "sqlite" and internal == "DateTimeField":
                self.converters.append((i, _sqlite_datetime))
            elif vendor == "sqlite" and internal in ("DateField", "DecimalField"):
                self.converters.append((i, _str))
        self.rows: list[list[Any]] = []
        self.next_id = self._max_pk() + 1
        self.written = 0

    def _max_pk(self) -> int:
        with connection.cursor() as cur:
            cur.execute(
                f"SELECT MAX({connection.ops.quote_name(self.model._meta.pk.column)}) "  # noqa: S608
                f"FROM {connection.ops.quote_name(self.model._meta.db_table)}"
            )
            value = cur.fetchone()[0]
        return int(value or 0)

    def add(self, **values: Any) -> int:
        """Buffer one row; returns its primary key (assigned here unless given)."""
        row = list(self.template)
        index = self.index
        for key, value in values.items():
            row[index[key]] = value
        for i, name, fn in self.callables:
            if name not in values:
                row[i] = fn()
        pk = row[self.pk_pos]
        if pk is None:
            pk = self.next_id
            self.next_id += 1
            row[self.pk_pos] = pk
        for i, conv in self.converters:
            row[i] = conv(row[i])
        self.rows.append(row)
        if len(self.rows) >= FLUSH_ROWS:
            self.flush()  # inside the caller's transaction; keeps memory flat
        return int(pk)

    def reserve_id(self) -> int:
        pk = self.next_id
        self.next_id += 1
        return pk

    def flush(self) -> int:
        if not self.rows:
            return 0
        rows, self.rows = self.rows, []
        table = connection.ops.quote_name(self.model._meta.db_table)
        cols = ", ".join(connection.ops.quote_name(c) for c in self.columns)
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                raw = cur.cursor  # the psycopg cursor under Django's wrapper
                with raw.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join(["%s"] * len(self.columns))
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)  # noqa: S608
        self.written += len(rows)
        return len(rows)


class BulkLoader:
    def __init__(self) -> None:
        self.tables: dict[type[models.Model], Table] = {}

    def table(self, model: type[models.Model]) -> Table:
        t = self.tables.get(model)
        if t is None:
            t = self.tables[model] = Table(self, model)
        return t

    def add(self, model: type[models.Model], **values: Any) -> int:
        return self.table(model).add(**values)

    def pending(self) -> int:
        return sum(len(t.rows) for t in self.tables.values())

    def flush(self) -> int:
        return sum(t.flush() for t in self.tables.values())

    def counts(self) -> dict[str, int]:
        return {m._meta.label: t.written for m, t in self.tables.items()}

    def finish(self) -> None:
        """After loading: move PostgreSQL sequences past the ids we assigned; refresh statistics."""
        self.flush()
        with connection.cursor() as cur:
            if connection.vendor == "postgresql":
                for sql in connection.ops.sequence_reset_sql(no_style(), list(self.tables)):
                    cur.execute(sql)
                for model in self.tables:
                    cur.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
            else:
                cur.execute("ANALYZE")


def tune_connection_for_load() -> None:
    """Per-connection settings that make a one-off bulk load faster (durability is not needed:
    a failed seed is simply run again)."""
    if connection.in_atomic_block:  # e.g. inside a test transaction: SQLite refuses PRAGMA synchronous
        return
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SET synchronous_commit = off")
            # Like pg_restore --disable-triggers: skip the per-row foreign-key triggers while loading
            # rows that are consistent by construction (superusers only; otherwise load with them).
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            if cur.fetchone()[0]:
                cur.execute("SET session_replication_role = replica")
        elif connection.vendor == "sqlite":
            for pragma in ("synchronous = OFF", "cache_size = -262144", "temp_store = MEMORY"):
                cur.execute(f"PRAGMA {pragma}")


def missing_tables(model_labels: Iterable[str]) -> list[str]:
    """Which of these models (app_label.Model) are not installed or have no (complete) table yet."""
    from django.apps import apps

    existing = set(connection.introspection.table_names())
    missing = []
    for label in model_labels:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            missing.append(f"{label} (no model)")
            continue
        table = model._meta.db_table
        if table not in existing:
            missing.append(f"{label} (no table: migrations not written or not applied)")
            continue
        with connection.cursor() as cur:
            have = {c.name for c in connection.introspection.get_table_description(cur, table)}
        want = {f.column for f in model._meta.concrete_fields}
        if want - have:
            missing.append(f"{label} (table lacks columns {sorted(want - have)})")
    return missing
