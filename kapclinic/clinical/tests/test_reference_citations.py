"""Every clinical citation in the code resolves inside the repository (docs/clinical-reference.md).

Code, data files and templates cite the reference as `ref §4.1` (a section of
docs/clinical-reference.md), `[S45]` (a source in its Sources list) or an anchor
(`docs/clinical-reference.md#phq-9`). A citation that points nowhere, or outside the repository, fails.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "docs" / "clinical-reference.md"
CITING = (".py", ".json", ".html", ".md", ".txt")


def citing_files() -> list[Path]:
    files = [
        p
        for p in (ROOT / "kapclinic").rglob("*")
        if p.suffix in CITING and p.is_file() and "static" not in p.parts and "migrations" not in p.parts
    ]
    files += [p for p in (ROOT / "tests").rglob("*") if p.suffix in CITING and p.is_file()]
    return [*files, ROOT / "README.md"]


def test_no_citation_leaves_the_repository() -> None:
    marker = "shared" + "/reference"  # spelled in two parts so that this file does not match itself
    outside = [str(p.relative_to(ROOT)) for p in citing_files() if marker in p.read_text("utf-8")]
    assert outside == []


def test_every_section_source_and_anchor_cited_exists() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.MULTILINE))
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))
    sources_part = text[text.index('<a id="sources"></a>') :]
    sources = set(re.findall(r"\[(S\d+[a-z]?)\]", sources_part))
    missing: list[str] = []
    for path in citing_files():
        body = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        for ref in re.findall(r"ref §\s?(\d+(?:\.\d+)?)", body):
            if ref not in sections:
                missing.append(f"{name}: ref §{ref}")
        for tag in re.findall(r"\[(S\d+[a-z]?)\]", body):
            # A bare family tag such as [S11] cites the group [S11a]-[S11c].
            if tag not in sources and not any(re.fullmatch(tag + r"[a-z]", known) for known in sources):
                missing.append(f"{name}: [{tag}]")
        for anchor in re.findall(r"clinical-reference\.md#([a-z0-9-]+)", body):
            if anchor not in anchors:
                missing.append(f"{name}: #{anchor}")
    assert missing == [], "\n".join(missing)
    assert {"phq-9", "gad-7", "pcl-5", "reliable-change", "sources"} <= anchors
