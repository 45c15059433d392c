"""The project's form base classes (``KapForm``, ``KapModelForm``: free text is cleaned of Unicode bidi
controls), typed access to a form's fields (``form.fields[name]`` is typed as the base ``Field``), and a
select widget for fixed choices."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, ClassVar

from django import forms
from django.forms.renderers import BaseRenderer
from django.utils.safestring import SafeString
from django.utils.translation import get_language

#: Unicode bidirectional embedding, override and isolate controls (U+202A-U+202E, U+2066-U+2069): an
#: override stored in a name or title reverses how it reads on every page that shows it.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_STRIP_BIDI = dict.fromkeys(map(ord, BIDI_CONTROLS))


def strip_bidi(text: str) -> str:
    """``text`` without bidi embedding/override/isolate controls (the one cleaning function)."""
    return text.translate(_STRIP_BIDI)


class CleanTextMixin:
    """Free text typed into any CharField (not a password) loses its bidi controls before the field
    validates it, so a value that was only controls is "required" and nothing stored carries one."""

    fields: dict[str, forms.Field]

    def _widget_data_value(self, widget: forms.Widget, html_name: str) -> Any:
        value = super()._widget_data_value(widget, html_name)  # type: ignore[misc]
        if isinstance(widget, forms.PasswordInput):
            return value
        if isinstance(value, str):
            return strip_bidi(value)
        if isinstance(value, list):
            return [strip_bidi(v) if isinstance(v, str) else v for v in value]
        return value


class KapForm(CleanTextMixin, forms.Form):
    """Every form of the project derives from this (or ``KapModelForm``)."""


class KapModelForm(CleanTextMixin, forms.ModelForm):  # type: ignore[type-arg]
    """Every model form of the project derives from this."""


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """The choice field ``name`` of ``form``, so its choices can be set per request.

    Raises TypeError (a programming error) when the field is not a choice field."""
    field = form.fields[name]
    if not isinstance(field, forms.ChoiceField):
        raise TypeError(f"Form field {name!r} is a {type(field).__name__}, not a ChoiceField.")
    return field


class FixedChoiceSelect(forms.Select):
    """A ``<select>`` over choices that never change while the process runs (a ``TextChoices`` list),
    its HTML rendered once per field name, selected value, attributes and language and then reused.

    Django renders every ``<option>`` through its own template: for the audit log's filter that costs
    more than the rest of the form (issue #7). The HTML is exactly what ``forms.Select`` renders (the
    key holds everything the rendering depends on); lists that change at run time must not use it."""

    _html: ClassVar[dict[Hashable, SafeString]] = {}
    _MAX = 512  # distinct renderings kept; beyond this, render as usual

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: BaseRenderer | None = None,
    ) -> SafeString:
        try:
            key: Hashable = (
                type(self),
                name,
                tuple(self.format_value(value)),
                tuple(sorted((attrs or {}).items())),
                tuple(sorted(self.attrs.items())),
                tuple((str(v), str(label)) for v, label in self.choices),
                get_language(),
                renderer,
            )
            hash(key)
        except TypeError:  # an attribute or choice that cannot be a key: render as usual
            return super().render(name, value, attrs, renderer)
        html = self._html.get(key)
        if html is None:
            html = super().render(name, value, attrs, renderer)
            if len(self._html) < self._MAX:
                self._html[key] = html
        return html
