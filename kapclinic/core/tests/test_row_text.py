"""The row helpers of issue #7 give the text the template tags and filters they replace give."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template import Context, Template
from django.test import override_settings
from django.urls import reverse
from django.urls.base import set_script_prefix

from kapclinic.core.display import date_text, hhmm
from kapclinic.core.links import RowLink

MOMENTS = [
    dt.datetime(2026, 3, 2, 4, 59, tzinfo=dt.UTC),  # the evening before, in the clinic's time zone
    dt.datetime(2026, 7, 14, 23, 5, 9, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 1, 6, 30, tzinfo=dt.UTC),  # the night the clocks go back
]


def _render(source: str, value: object) -> str:
    return Template(source).render(Context({"v": value}))


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("fmt", ["j M Y", "D j M H:i", "l j F, H:i", "l j F", "j M", "Y-m-d H:i:s"])
def test_date_text_is_the_date_filter(moment: dt.datetime, fmt: str) -> None:
    assert date_text(moment, fmt) == _render('{{ v|date:"' + fmt + '" }}', moment)


@pytest.mark.parametrize("language", ["de", "fr", "es"])
@pytest.mark.parametrize("fmt", ["j M Y", "D j M H:i", "l j F, H:i", "d.m.Y n", r"j \d\e F", "N jS P"])
def test_date_text_is_the_date_filter_in_other_languages(language: str, fmt: str) -> None:
    from django.utils import translation

    with translation.override(language):
        for moment in MOMENTS:
            assert date_text(moment, fmt) == _render('{{ v|date:"' + fmt + '" }}', moment)


@pytest.mark.parametrize("moment", MOMENTS)
def test_hhmm_is_the_time_filter(moment: dt.datetime) -> None:
    assert hhmm(moment) == _render('{{ v|time:"H:i" }}', moment)


def test_empty_values() -> None:
    assert date_text(None, "j M Y") == "" and hhmm(None) == ""
    assert date_text(dt.date(2026, 3, 2), "j M Y") == "2 Mar 2026"


@pytest.mark.parametrize(
    ("viewname", "ids"),
    [("scheduling:detail", (7,)), ("sessions:detail", (12, 3456)), ("portal:entry", (98765432100,))],
)
def test_row_link_is_reverse(viewname: str, ids: tuple[int, ...]) -> None:
    link = RowLink(viewname, len(ids))
    assert link(*ids) == reverse(viewname, args=list(ids))
    assert link(*(i + 1 for i in ids)) == reverse(viewname, args=[i + 1 for i in ids])


def test_row_link_follows_the_script_prefix() -> None:
    set_script_prefix("/clinic/")
    try:
        assert RowLink("sessions:detail", 2)(1, 2) == reverse("sessions:detail", args=[1, 2])
        assert RowLink("sessions:detail", 2)(1, 2).startswith("/clinic/")
    finally:
        set_script_prefix("/")


def test_row_link_refuses_a_wrong_number_of_ids() -> None:
    with pytest.raises(ValueError, match="1 to 4 ids"):
        RowLink("sessions:detail", 0)


def test_link_tag_is_the_url_tag() -> None:
    names = ["core:home", "patients:list", "portal:journal", "accounts:logout"]
    for name in names:
        expected = _render("{% url '" + name + "' %}", None)
        assert _render("{% load kap %}{% link '" + name + "' %}", None) == expected
    set_script_prefix("/clinic/")
    try:
        assert _render("{% load kap %}{% link 'core:home' %}", None) == reverse("core:home")
        assert reverse("core:home").startswith("/clinic/")
    finally:
        set_script_prefix("/")
    assert _render("{% load kap %}{% link 'core:home' %}", None) == reverse("core:home")


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
