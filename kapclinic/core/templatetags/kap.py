from __future__ import annotations

from typing import Any

from django import template
from django.utils.formats import localize
from django.utils.html import format_html_join

register = template.Library()


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """`{{ dict|get_item:key }}` for dictionaries keyed by variables."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def point_items(points: Any) -> str:
    """``{% for p in points %}<li>{{ p.x }}: {{ p.y }}</li>{% endfor %}`` in one step: the same text
    (values localized and escaped as ``{{ }}`` does), without a template loop per point (a score
    history is a hundred points; issue #7)."""
    return format_html_join("", "<li>{}: {}</li>", ((localize(p["x"]), localize(p["y"])) for p in points))


@register.filter
def implausible_date(value: Any) -> bool:
    """``{% if row.at|implausible_date %}``: a stored date outside every plausible window (core.dates)."""
    from kapclinic.core.dates import implausible_stored

    return implausible_stored(value)


@register.filter
def tel_href(number: Any) -> str:
    """A phone number as written ("+1 (555) 010-4477") as a tel: link target ("tel:+15550104477"):
    digits only, a leading + kept. Empty when the number has no digit."""
    text = str(number or "").strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return ""
    return "tel:" + ("+" if text.startswith("+") else "") + digits
