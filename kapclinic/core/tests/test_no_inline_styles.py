"""style-src 'self': no template carries an inline style, and nothing the pages run writes one.

The Content-Security-Policy (settings.CONTENT_SECURITY_POLICY) allows stylesheets from this site only,
so a style="..." attribute or a <style> element is refused by the browser (and reported on its console,
which fails the browser tests). Static rules live in static/css/; values computed per request (the day
calendar's block positions) travel as data attributes and are applied through the CSSOM by
static/js/calendar.js, which the policy allows.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[2]  # the kapclinic package

STYLE_ATTRIBUTE = re.compile(r"""<[a-z][^>]*\sstyle\s*=""", re.I)
STYLE_ELEMENT = re.compile(r"<style\b", re.I)
# Project scripts may set element.style (CSSOM); they must not write a style attribute or markup with one.
JS_STYLE_WRITE = re.compile(
    r"""setAttribute\(\s*["']style["']|\.cssText\s*=|(?:innerHTML|outerHTML|insertAdjacentHTML)[^;]*(?:style=|<style)""",
    re.I,
)
HTMX_CONFIG = re.compile(r"""<meta name="htmx-config" content='([^']*)'>""")

# Templates allowed an inline style, each with its reason.
ALLOWED: dict[str, str] = {
    "templates/pdf/base.html": "rendered to PDF by WeasyPrint (core/pdf.py), never served to a browser",
}


def _templates() -> list[Path]:
    return sorted(ROOT.rglob("templates/**/*.html"))


def _project_scripts() -> list[Path]:
    return sorted(p for p in ROOT.rglob("static/**/*.js") if "vendor" not in p.parts)


def _offenders(paths: list[Path], *patterns: re.Pattern[str]) -> list[str]:
    found = []
    for path in paths:
        rel = str(path.relative_to(ROOT))
        if rel in ALLOWED:
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{rel}:{line}: {m.group(0).strip()[:80]}")
    return found


def test_policy_allows_styles_from_this_site_only() -> None:
    directives = dict(d.strip().split(" ", 1) for d in settings.CONTENT_SECURITY_POLICY.split(";"))
    assert directives["style-src"] == "'self'"


def test_no_template_carries_a_style_attribute_or_element() -> None:
    assert _templates(), "no templates found"
    offenders = _offenders(_templates(), STYLE_ATTRIBUTE, STYLE_ELEMENT)
    assert not offenders, "refused by style-src 'self' (use a class in static/css/):\n" + "\n".join(offenders)


def test_project_scripts_style_through_the_cssom_only() -> None:
    assert _project_scripts(), "no project scripts found"
    offenders = _offenders(_project_scripts(), JS_STYLE_WRITE)
    assert not offenders, "refused by style-src 'self' (set element.style instead):\n" + "\n".join(offenders)


def test_htmx_never_writes_an_inline_style() -> None:
    """htmx adds an inline <style> for .htmx-indicator unless includeIndicatorStyles is false, and while
    settling a swap it copies an element's style attribute (set through the CSSOM by a script, a browser
    extension or a screenshot) unless "style" is left out of attributesToSettle; both are refused by
    style-src 'self'. htmx reads only the first htmx-config meta, so every one must say both."""
    metas = {}
    for path in _templates():
        for m in HTMX_CONFIG.finditer(path.read_text(encoding="utf-8")):
            metas[f"{path.relative_to(ROOT)}:{m.start()}"] = json.loads(m.group(1))
    assert any(k.startswith("templates/html_base.html") for k in metas)  # the <head> of both base templates
    for where, config in metas.items():
        assert config.get("includeIndicatorStyles") is False, where
        assert "style" not in config.get("attributesToSettle", ["style"]), where
    for path in _templates():
        text = path.read_text(encoding="utf-8")
        if "htmx.min.js" in text:
            assert '{% block htmx_config %}<meta name="htmx-config"' in text, path
    css = (ROOT / "static" / "css" / "app.css").read_text(encoding="utf-8")
    assert ".htmx-indicator {" in css and ".htmx-request .htmx-indicator" in css


def test_the_scanners_find_what_they_must() -> None:
    assert STYLE_ATTRIBUTE.search('<div class="card" style="max-width:28rem">')
    assert STYLE_ATTRIBUTE.search("<span\n  style='top: 3px'>")
    assert not STYLE_ATTRIBUTE.search('<div class="pre-wrap" data-cal-top="12">')
    assert STYLE_ELEMENT.search("<style>body{}</style>")
    assert not STYLE_ELEMENT.search('<link rel="stylesheet" href="/static/css/app.css">')
    assert JS_STYLE_WRITE.search('el.setAttribute("style", "top: 3px")')
    assert JS_STYLE_WRITE.search("el.innerHTML = '<b style=\"color:red\">x</b>';")
    assert not JS_STYLE_WRITE.search("el.style.top = px(el.dataset.calTop);")


def _no_inline_style(html: str) -> None:
    assert not STYLE_ATTRIBUTE.search(html), STYLE_ATTRIBUTE.search(html)
    assert not STYLE_ELEMENT.search(html)


@pytest.mark.django_db
def test_rendered_pages_carry_no_inline_style(client: Client, world: Any) -> None:
    """Widgets and views could add style attributes the template scan cannot see: render some pages."""
    from kapclinic.scheduling.models import Appointment

    _no_inline_style(client.get("/account/login/").content.decode())
    client.force_login(world.front_desk)
    day = timezone.localdate() + dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(9, 30), tzinfo=timezone.get_current_timezone())
    Appointment.objects.create(
        clinic=world.clinic, patient=world.patient, kind="integration", starts_at=start,
        ends_at=start + dt.timedelta(minutes=50), staff=world.therapist, created_by=world.front_desk,
    )  # fmt: skip
    response = client.get(f"/schedule/?date={day.isoformat()}")
    html = response.content.decode()
    assert response.status_code == 200
    _no_inline_style(html)
    # The calendar's geometry travels as data attributes (applied by static/js/calendar.js).
    assert 'data-cal-day-height="' in html and 'data-cal-top="' in html
    assert re.search(r'class="cal-block[^"]*" data-cal-top="\d+" data-cal-height="60"', html)  # 50 min
    assert "js/calendar.js" in html
    _no_inline_style(client.get(f"/patients/{world.patient.pk}/").content.decode())
