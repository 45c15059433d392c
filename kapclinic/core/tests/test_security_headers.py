"""The Content-Security-Policy is sent everywhere, and no template needs what it forbids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]  # the kapclinic package

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=\s*[\"']", re.I)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']\s*javascript:""", re.I)


def _templates() -> list[Path]:
    return sorted(p for p in ROOT.rglob("templates/**/*.html"))


def test_templates_carry_no_inline_script_handlers_or_javascript_urls() -> None:
    offenders = []
    for path in _templates():
        text = path.read_text(encoding="utf-8")
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JS_URL):
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0).strip()}")
    assert not offenders, "blocked by the Content-Security-Policy:\n" + "\n".join(offenders)


def test_the_scanner_finds_what_it_must() -> None:
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/js/site.js" defer></script>')
    assert INLINE_HANDLER.search('<button onclick="x()">')
    assert not INLINE_HANDLER.search('<button data-print type="button">')
    assert JS_URL.search('<a href="javascript:void(0)">')


@pytest.mark.django_db
def test_policy_header_on_public_and_signed_in_pages(client: Client, world: object) -> None:
    public = client.get("/")
    csp = public["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "unsafe-eval" not in csp and "unsafe-inline" not in csp
    # Styles come from this site's stylesheets only: injected markup can neither style nor overlay a page.
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["style-src"] == "'self'"
    client.force_login(world.prescriber)  # type: ignore[attr-defined]
    home = client.get("/home/", follow=True)
    assert home.status_code == 200 and home["Content-Security-Policy"] == csp
