"""Load instrument definitions (FHIR R4 Questionnaire JSON) into frozen, typed values.

The file is validated as a FHIR Questionnaire by fhir.resources' pydantic model; KAP's extensions (key,
licence, scoring rule, severity bands, ordinal values, clusters) are then read into the dataclasses
below.  A problem is reported with its field path, e.g.
``phq9.json: item[3].answerOption[1].extension[0].valueDecimal: ...``.

The JSON files beside this module are the single source of item wording, answer scores, codes, severity
bands and PCL-5 clusters. Each carries ``version`` and ``source`` citations into
docs/clinical-reference.md (ref §4). Nothing here imports Django.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from kapclinic.clinical.datafile import describe

if TYPE_CHECKING:  # the runtime import is deferred to parse_questionnaire (fhir.resources is slow to import)
    from fhir.resources.R4B.coding import Coding as FhirCoding
    from fhir.resources.R4B.extension import Extension
    from fhir.resources.R4B.questionnaire import (
        Questionnaire,
        QuestionnaireItem,
        QuestionnaireItemAnswerOption,
    )

T = TypeVar("T")

EXT = "https://kapclinic.org/fhir/StructureDefinition/"
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

#: Instrument key -> data file name. Keys are the names accepted on the command line.
INSTRUMENT_FILES: dict[str, str] = {"PHQ-9": "phq9.json", "GAD-7": "gad7.json", "PCL-5": "pcl5.json"}
INSTRUMENT_KEYS: tuple[str, ...] = tuple(INSTRUMENT_FILES)


class UnknownInstrumentError(LookupError):
    """Raised for an instrument name or version that has no definition."""


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str = ""


@dataclass(frozen=True)
class AnswerOption:
    score: int
    label: str
    coding: Coding
    #: Other codes that mean the same answer (e.g. GAD-7 item 2 LA18938-3, ref §4.2 [S44a]).
    equivalent_codings: tuple[Coding, ...] = ()


@dataclass(frozen=True)
class Item:
    number: int
    link_id: str
    text: str
    coding: Coding
    options: tuple[AnswerOption, ...]
    scored: bool = True
    required: bool = True
    cluster: str | None = None

    @property
    def min_score(self) -> int:
        return min(o.score for o in self.options)

    @property
    def max_score(self) -> int:
        return max(o.score for o in self.options)

    def label_for(self, score: int) -> str:
        for option in self.options:
            if option.score == score:
                return option.label
        raise ValueError(f"Item {self.number} has no answer with the value {score}.")

    def score_for_code(self, code: str) -> int:
        """Map an answer code (including equivalent codes) to its score."""
        for option in self.options:
            if option.coding.code == code or any(c.code == code for c in option.equivalent_codings):
                return option.score
        raise ValueError(f"Item {self.number} has no answer with the code {code}.")


@dataclass(frozen=True)
class Band:
    min: int
    max: int
    code: str
    label: str
    source: str

    def contains(self, total: int) -> bool:
        return self.min <= total <= self.max


@dataclass(frozen=True)
class Instrument:
    key: str
    version: str
    title: str
    url: str
    licence_status: str
    copyright: str
    panel: Coding | None
    total_coding: Coding | None
    instructions: tuple[str, ...]
    items: tuple[Item, ...]
    bands: tuple[Band, ...]
    scoring_rule: str
    sources: tuple[str, ...]

    @property
    def scored_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.scored)

    @property
    def min_total(self) -> int:
        return sum(i.min_score for i in self.scored_items)

    @property
    def max_total(self) -> int:
        return sum(i.max_score for i in self.scored_items)

    @property
    def clusters(self) -> tuple[str, ...]:
        seen: list[str] = []
        for item in self.items:
            if item.cluster is not None and item.cluster not in seen:
                seen.append(item.cluster)
        return tuple(seen)

    def item(self, number: int) -> Item:
        for item in self.items:
            if item.number == number:
                return item
        raise ValueError(f"{self.key} has no item {number}.")


# --------------------------------------------------------------------------------------------------
# Reading a Questionnaire: fhir.resources validates the FHIR structure (R4B models, structurally R4 for
# a Questionnaire); the mapping below reads KAP's extensions and names the field path of any problem.
# --------------------------------------------------------------------------------------------------


class InstrumentDataError(ValueError):
    """An instrument definition is malformed; the message names the file and the field path."""


class _Problem(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


def _required(value: T | None, where: str) -> T:
    if value is None:
        raise _Problem(where, "required key is missing")
    return value


def _at(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _extensions(extensions: list[Extension] | None, name: str, prefix: str) -> list[tuple[str, Extension]]:
    """(field path, extension) for each extension called ``name`` (a KAP name or a full URL)."""
    url = name if name.startswith("http") else EXT + name
    return [(_at(prefix, f"extension[{i}]"), e) for i, e in enumerate(extensions or []) if e.url == url]


def _one(extensions: list[Extension] | None, name: str, prefix: str) -> tuple[str, Extension]:
    found = _extensions(extensions, name, prefix)
    if len(found) != 1:
        raise _Problem(_at(prefix, "extension"), f"needs exactly one {name} extension (found {len(found)})")
    return found[0]


def _part(extension: Extension, url: str, where: str) -> tuple[str, Extension]:
    for k, sub in enumerate(extension.extension or []):
        if sub.url == url:
            return f"{where}.extension[{k}]", sub
    raise _Problem(f"{where}.extension", f"lacks its {url!r} part")


def _coding(raw: FhirCoding | None, where: str) -> Coding:
    raw = _required(raw, where)
    return Coding(
        system=_required(raw.system, f"{where}.system"),
        code=_required(raw.code, f"{where}.code"),
        display=raw.display or "",
    )


def _option(raw: QuestionnaireItemAnswerOption, where: str) -> AnswerOption:
    ordinal = _extensions(raw.extension, ORDINAL_VALUE, where)
    if len(ordinal) != 1:
        raise _Problem(_at(where, "extension"), "an answer needs exactly one ordinalValue extension")
    ordinal_at, ordinal_ext = ordinal[0]
    score = _required(ordinal_ext.valueDecimal, f"{ordinal_at}.valueDecimal")
    if int(score) != score:
        raise _Problem(f"{ordinal_at}.valueDecimal", f"an answer score is a whole number (got {score})")
    coding = _coding(raw.valueCoding, f"{where}.valueCoding")
    if not coding.display:
        raise _Problem(f"{where}.valueCoding.display", "required key is missing")
    return AnswerOption(
        score=int(score),
        label=coding.display,
        coding=coding,
        equivalent_codings=tuple(
            _coding(e.valueCoding, f"{e_at}.valueCoding")
            for e_at, e in _extensions(raw.extension, "equivalent-answer-code", where)
        ),
    )


def _item(raw: QuestionnaireItem, number: int, where: str) -> Item:
    options = [
        _option(o, f"{where}.answerOption[{j}]")
        for j, o in enumerate(_required(raw.answerOption, f"{where}.answerOption"))
    ]
    if not options:
        raise _Problem(f"{where}.answerOption", "a question needs its answers")
    scored = _extensions(raw.extension, "scored", where)
    cluster = _extensions(raw.extension, "cluster", where)
    return Item(
        number=number,
        link_id=_required(raw.linkId, f"{where}.linkId"),
        text=_required(raw.text, f"{where}.text"),
        coding=_coding(raw.code[0] if raw.code else None, f"{where}.code[0]"),
        options=tuple(sorted(options, key=lambda o: o.score)),
        scored=_required(scored[0][1].valueBoolean, f"{scored[0][0]}.valueBoolean") if scored else True,
        required=bool(raw.required),
        cluster=_required(cluster[0][1].valueCode, f"{cluster[0][0]}.valueCode") if cluster else None,
    )


def _bands(q: Questionnaire, min_total: int, max_total: int) -> tuple[Band, ...]:
    """Severity bands, when present, must tile min_total..max_total without gaps or overlaps."""
    located: list[tuple[str, Band]] = []
    for where, ext in _extensions(q.extension, "severity-band", ""):
        parts = {name: _part(ext, name, where) for name in ("min", "max", "code", "label", "source")}
        (min_at, low), (max_at, high) = parts["min"], parts["max"]
        (code_at, code), (label_at, label), (source_at, source) = (
            parts["code"],
            parts["label"],
            parts["source"],
        )
        band = Band(
            min=_required(low.valueInteger, f"{min_at}.valueInteger"),
            max=_required(high.valueInteger, f"{max_at}.valueInteger"),
            code=_required(code.valueCode, f"{code_at}.valueCode"),
            label=_required(label.valueString, f"{label_at}.valueString"),
            source=_required(source.valueString, f"{source_at}.valueString"),
        )
        located.append((where, band))
    located.sort(key=lambda wb: wb[1].min)
    expected = min_total
    for where, band in located:
        if band.min != expected or band.max < band.min:
            raise _Problem(where, f"the severity bands do not tile the score range at {band.min}")
        expected = band.max + 1
    if located and expected != max_total + 1:
        raise _Problem(located[-1][0], f"the severity bands do not reach the maximum total {max_total}")
    return tuple(b for _w, b in located)


def _instrument(q: Questionnaire) -> Instrument:
    items: list[Item] = []
    instructions: list[str] = []
    for i, raw in enumerate(q.item or []):
        where = f"item[{i}]"
        if raw.type == "display":
            instructions.append(_required(raw.text, f"{where}.text"))
        elif raw.type == "choice":
            items.append(_item(raw, len(items) + 1, where))
        else:
            raise _Problem(f"{where}.type", f"an item is 'display' or 'choice' (got {raw.type!r})")
    scored = [i for i in items if i.scored]
    bands = _bands(q, sum(i.min_score for i in scored), sum(i.max_score for i in scored))
    key_at, key = _one(q.extension, "instrument-key", "")
    licence_at, licence = _one(q.extension, "licence-status", "")
    rule_at, rule = _one(q.extension, "scoring-rule", "")
    total = _extensions(q.extension, "total-score-code", "") or _extensions(
        q.extension, "local-total-code", ""
    )
    return Instrument(
        key=_required(key.valueString, f"{key_at}.valueString"),
        version=_required(q.version, "version"),
        title=_required(q.title, "title"),
        url=_required(q.url, "url"),
        licence_status=_required(licence.valueCode, f"{licence_at}.valueCode"),
        copyright=q.copyright or "",
        panel=_coding(q.code[0], "code[0]") if q.code else None,
        total_coding=_coding(total[0][1].valueCoding, f"{total[0][0]}.valueCoding") if total else None,
        instructions=tuple(instructions),
        items=tuple(items),
        bands=bands,
        scoring_rule=_required(rule.valueCode, f"{rule_at}.valueCode"),
        sources=tuple(
            _required(e.valueString, f"{at}.valueString") for at, e in _extensions(q.extension, "source", "")
        ),
    )


def parse_questionnaire(data: dict[str, Any], path: str = "<data>") -> Instrument:
    """Turn a Questionnaire resource (decoded JSON) into an :class:`Instrument`.

    Raises :class:`InstrumentDataError` (a ValueError) naming ``path`` and the field path of the problem."""
    from fhir.resources.R4B.questionnaire import Questionnaire  # heavy: imported when a file is first read

    if not isinstance(data, Mapping) or data.get("resourceType") != "Questionnaire":
        raise InstrumentDataError(f"{path}: resourceType: the definition is not a FHIR Questionnaire")
    try:
        questionnaire = Questionnaire.model_validate(data)
    except ValidationError as exc:
        raise InstrumentDataError(f"{path}: {describe(exc)}") from None
    try:
        return _instrument(questionnaire)
    except _Problem as problem:
        raise InstrumentDataError(f"{path}: {problem}") from None


def _normalise_key(name: str) -> str:
    compact = name.strip().upper().replace("_", "-").replace(" ", "")
    if "-" not in compact and compact[:3] in {"PHQ", "GAD", "PCL"}:
        compact = compact[:3] + "-" + compact[3:]
    return compact


@cache
def _load_file(filename: str) -> Instrument:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return parse_questionnaire(json.loads(text, parse_float=Decimal), filename)


def available_versions(key: str) -> tuple[str, ...]:
    """Versions on file for an instrument key (today one per instrument)."""
    return (get_instrument(key).version,)


def get_instrument(name: str, version: str | None = None) -> Instrument:
    """Return the instrument called ``name`` (``PHQ-9``, ``GAD-7``, ``PCL-5``; case-insensitive).

    If ``version`` is given and does not match a definition on file, :class:`UnknownInstrumentError` is
    raised: a response must always name the exact version it answered.
    """
    key = _normalise_key(name)
    if key not in INSTRUMENT_FILES:
        raise UnknownInstrumentError(
            f"Unknown instrument {name!r}: the instrument must be one of {', '.join(INSTRUMENT_KEYS)}."
        )
    instrument = _load_file(INSTRUMENT_FILES[key])
    if version is not None and version != instrument.version:
        raise UnknownInstrumentError(
            f"{key} version {version!r} is not on file: the known version is {instrument.version}."
        )
    return instrument


def all_instruments() -> tuple[Instrument, ...]:
    return tuple(get_instrument(k) for k in INSTRUMENT_KEYS)


def questionnaire_json(name: str) -> dict[str, Any]:
    """The raw FHIR Questionnaire resource for an instrument (for export / interop)."""
    key = _normalise_key(name)
    if key not in INSTRUMENT_FILES:
        raise UnknownInstrumentError(f"Unknown instrument {name!r}.")
    text = resources.files(__package__).joinpath(INSTRUMENT_FILES[key]).read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
