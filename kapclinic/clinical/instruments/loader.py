"""Load instrument definitions (FHIR R4 Questionnaire JSON) into frozen, typed values.

The JSON files beside this module are the single source of item wording, answer scores, codes, severity
bands and PCL-5 clusters. Each carries ``version`` and ``source`` citations into
docs/clinical-reference.md (ref §4). Nothing here imports Django.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

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


def _ext(node: dict[str, Any], name: str) -> list[dict[str, Any]]:
    url = name if name.startswith("http") else EXT + name
    return [e for e in node.get("extension", []) if e.get("url") == url]


def _coding(raw: dict[str, Any]) -> Coding:
    return Coding(system=str(raw["system"]), code=str(raw["code"]), display=str(raw.get("display", "")))


def _sub(ext: dict[str, Any], url: str) -> Any:
    for sub in ext.get("extension", []):
        if sub.get("url") == url:
            for k, v in sub.items():
                if k.startswith("value"):
                    return v
    raise ValueError(f"Extension {ext.get('url')} lacks {url}.")


def parse_questionnaire(data: dict[str, Any]) -> Instrument:
    """Turn a Questionnaire resource (dict) into an :class:`Instrument`; raises ValueError if malformed."""
    if data.get("resourceType") != "Questionnaire":
        raise ValueError("The definition is not a FHIR Questionnaire.")
    key_ext = _ext(data, "instrument-key")
    if not key_ext:
        raise ValueError("The Questionnaire lacks the instrument-key extension.")
    items: list[Item] = []
    instructions: list[str] = []
    number = 0
    for raw in data.get("item", []):
        if raw["type"] == "display":
            instructions.append(str(raw["text"]))
            continue
        number += 1
        options: list[AnswerOption] = []
        for raw_opt in raw["answerOption"]:
            ordinal = _ext(raw_opt, ORDINAL_VALUE)
            if len(ordinal) != 1:
                raise ValueError(f"Item {raw['linkId']} has an answer without exactly one ordinalValue.")
            score = ordinal[0]["valueDecimal"]
            if int(score) != score:
                raise ValueError(f"Item {raw['linkId']} has a non-integer answer score.")
            options.append(
                AnswerOption(
                    score=int(score),
                    label=str(raw_opt["valueCoding"]["display"]),
                    coding=_coding(raw_opt["valueCoding"]),
                    equivalent_codings=tuple(
                        _coding(e["valueCoding"]) for e in _ext(raw_opt, "equivalent-answer-code")
                    ),
                )
            )
        scored_ext = _ext(raw, "scored")
        cluster_ext = _ext(raw, "cluster")
        items.append(
            Item(
                number=number,
                link_id=str(raw["linkId"]),
                text=str(raw["text"]),
                coding=_coding(raw["code"][0]),
                options=tuple(sorted(options, key=lambda o: o.score)),
                scored=bool(scored_ext[0]["valueBoolean"]) if scored_ext else True,
                required=bool(raw.get("required", False)),
                cluster=str(cluster_ext[0]["valueCode"]) if cluster_ext else None,
            )
        )
    bands = tuple(
        sorted(
            (
                Band(
                    min=int(_sub(e, "min")),
                    max=int(_sub(e, "max")),
                    code=str(_sub(e, "code")),
                    label=str(_sub(e, "label")),
                    source=str(_sub(e, "source")),
                )
                for e in _ext(data, "severity-band")
            ),
            key=lambda b: b.min,
        )
    )
    total_ext = _ext(data, "total-score-code") or _ext(data, "local-total-code")
    codes = data.get("code") or []
    instrument = Instrument(
        key=str(key_ext[0]["valueString"]),
        version=str(data["version"]),
        title=str(data["title"]),
        url=str(data["url"]),
        licence_status=str(_ext(data, "licence-status")[0]["valueCode"]),
        copyright=str(data.get("copyright", "")),
        panel=_coding(codes[0]) if codes else None,
        total_coding=_coding(total_ext[0]["valueCoding"]) if total_ext else None,
        instructions=tuple(instructions),
        items=tuple(items),
        bands=bands,
        scoring_rule=str(_ext(data, "scoring-rule")[0]["valueCode"]),
        sources=tuple(str(e["valueString"]) for e in _ext(data, "source")),
    )
    _check_bands(instrument)
    return instrument


def _check_bands(instrument: Instrument) -> None:
    """Bands, when present, must tile min_total..max_total without gaps or overlaps."""
    if not instrument.bands:
        return
    expected = instrument.min_total
    for band in instrument.bands:
        if band.min != expected or band.max < band.min:
            raise ValueError(f"{instrument.key} severity bands do not tile the score range at {band.min}.")
        expected = band.max + 1
    if expected != instrument.max_total + 1:
        raise ValueError(f"{instrument.key} severity bands do not reach the maximum total.")


def _normalise_key(name: str) -> str:
    compact = name.strip().upper().replace("_", "-").replace(" ", "")
    if "-" not in compact and compact[:3] in {"PHQ", "GAD", "PCL"}:
        compact = compact[:3] + "-" + compact[3:]
    return compact


@cache
def _load_file(filename: str) -> Instrument:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return parse_questionnaire(json.loads(text))


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
