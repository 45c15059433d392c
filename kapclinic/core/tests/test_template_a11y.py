"""Markup rules that keep every page usable by keyboard and screen reader (issue 18), checked on the
template sources so a new page cannot miss them:

- a `.table-wrap` (a table that may scroll sideways on a phone) is a focusable, named region:
  tabindex="0" role="region" aria-label="..." (axe: scrollable-region-focusable);
- an error summary's role="alert" sits on a <div> around the list, never on the <ul>/<ol> itself (a
  list with a role other than list loses its items' list semantics; axe: list, listitem).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the kapclinic package

TABLE_WRAP = re.compile(r"""<[a-z]+\s[^>]*class="[^"]*\btable-wrap\b[^"]*"[^>]*>""", re.I)
LIST_WITH_ROLE = re.compile(r"""<(?:ul|ol)\b[^>]*\srole=""", re.I)


def _templates() -> list[Path]:
    return sorted(ROOT.rglob("templates/**/*.html"))


def test_every_table_wrap_is_a_focusable_named_region() -> None:
    bad = []
    for path in _templates():
        for tag in TABLE_WRAP.findall(path.read_text()):
            if not ('tabindex="0"' in tag and 'role="region"' in tag and "aria-label=" in tag):
                bad.append(f"{path.relative_to(ROOT)}: {tag}")
    assert not bad, "give each .table-wrap tabindex, role and aria-label:\n" + "\n".join(bad)


def test_no_list_carries_a_role() -> None:
    bad = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in _templates()
        for m in LIST_WITH_ROLE.finditer(path.read_text())
    ]
    assert not bad, 'wrap the list in <div role="alert"> instead:\n' + "\n".join(bad)


def test_the_scan_sees_the_templates() -> None:
    texts = "".join(p.read_text() for p in _templates())
    assert TABLE_WRAP.search(texts) and "errorlist nonfield" in texts
