"""The row helpers of issue #7 that remain give the text the template tags and filters they replace give.
(core/display.py and core/links.py, copies of ``|date`` and ``reverse``, were removed in issue 13: the
pages call Django's own, so there is nothing to keep in step.)"""

from __future__ import annotations

from django.template import Context, Template
from django.test import override_settings


def _render(source: str, value: object) -> str:
    return Template(source).render(Context({"v": value}))


@override_settings(USE_THOUSAND_SEPARATOR=True)
def test_point_items_is_the_template_loop() -> None:
    points = [{"x": "2026-03-02", "y": 14}, {"x": "<b>", "y": 1234}, {"x": "2026-03-09", "y": 2.5}]
    loop = "{% for p in v %}<li>{{ p.x }}: {{ p.y }}</li>{% endfor %}"
    assert _render("{% load kap %}{{ v|point_items }}", points) == _render(loop, points)
    assert _render("{% load kap %}{{ v|point_items }}", []) == ""


def test_fixed_choice_select_is_the_select_widget() -> None:
    from django import forms

    from kapclinic.core.forms import FixedChoiceSelect

    choices = [("", "Any"), ("a", "Apples & pears"), ("b", "Bananas")]
    for value in ("", "a", "b", None, "zzz"):
        for attrs in (None, {"id": "id_fruit"}, {"id": "id_fruit", "required": True}):
            fast = FixedChoiceSelect(choices=choices).render("fruit", value, attrs)
            assert fast == forms.Select(choices=choices).render("fruit", value, attrs)
            assert FixedChoiceSelect(choices=choices).render("fruit", value, attrs) == fast  # remembered
    other = [("a", "Apricots")]
    assert "Apricots" in FixedChoiceSelect(choices=other).render("fruit", "a", {"id": "id_fruit"})
