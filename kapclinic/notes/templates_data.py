"""Note templates as data: the built-in set (data/note_templates.json) plus each clinic's own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("data") / "note_templates.json"
INTEGRATION = "integration"


@dataclass(frozen=True)
class Section:
    key: str
    label: str
    source: str = ""


@dataclass(frozen=True)
class Template:
    key: str
    kind: str
    title: str
    version: str
    sections: tuple[Section, ...]
    builtin: bool = True
    #: For clinic templates: the ClinicNoteTemplate row and its current content version number.
    clinic_template_id: int | None = None
    number: int = 0


@cache
def builtin_templates() -> dict[str, Template]:
    raw = json.loads(DATA.read_text())
    out: dict[str, Template] = {}
    for t in raw["templates"]:
        out[t["key"]] = Template(
            key=t["key"],
            kind=t["kind"],
            title=t["title"],
            version=raw["version"],
            sections=tuple(Section(s["key"], s["label"], s.get("source", "")) for s in t["sections"]),
        )
    return out


def clinic_template(row: Any) -> Template:
    """The current version of a clinic template (``number`` is its content version, not the
    optimistic-concurrency counter)."""
    return Template(
        key=f"clinic-{row.pk}",
        kind="custom",
        title=row.title,
        version=f"clinic-{row.pk}.{row.number}",
        sections=tuple(Section(s["key"], s["label"]) for s in row.sections),
        builtin=False,
        clinic_template_id=row.pk,
        number=row.number,
    )


def hidden_builtin_keys(clinic: Any) -> set[str]:
    from kapclinic.notes.models import HiddenBuiltinTemplate

    return set(HiddenBuiltinTemplate.objects.filter(clinic=clinic).values_list("key", flat=True))


def available_templates(clinic: Any) -> dict[str, Template]:
    """Templates offered for new notes: built-ins the clinic has not hidden, then its own templates that
    are not retired."""
    from kapclinic.notes.models import ClinicNoteTemplate

    hidden = hidden_builtin_keys(clinic)
    out = {k: t for k, t in builtin_templates().items() if k not in hidden}
    for row in ClinicNoteTemplate.objects.filter(clinic=clinic, is_active=True).order_by("title"):
        tpl = clinic_template(row)
        out[tpl.key] = tpl
    return out
