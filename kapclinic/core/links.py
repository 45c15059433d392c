"""Links for list rows without a ``{% url %}`` tag per row (issue #7).

``{% url %}`` resolves the whole URL configuration on every call; a list of 20 rows pays that 20 times
for addresses that differ only in their ids. ``RowLink`` reverses the view once, with placeholder ids,
and then fills each row's ids into that address: the same text ``reverse()`` gives, for integer ids.
Make one per request (not at import time): the address depends on the request's script prefix.
"""

from __future__ import annotations

from django.urls import reverse

#: Placeholder ids: long enough that no other part of an address contains them by chance.
_MARKS = tuple(str(987_654_321_000 + i) for i in range(4))


class RowLink:
    """``RowLink("sessions:detail")(patient_id, session_id) == reverse("sessions:detail", args=[...])``."""

    __slots__ = ("_parts", "_viewname")

    def __init__(self, viewname: str, nargs: int = 1) -> None:
        if not 1 <= nargs <= len(_MARKS):
            raise ValueError(f"RowLink takes 1 to {len(_MARKS)} ids, not {nargs}.")
        self._viewname = viewname
        url = reverse(viewname, args=[int(m) for m in _MARKS[:nargs]])
        parts: list[str] = []
        rest = url
        for mark in _MARKS[:nargs]:
            head, found, rest = rest.partition(mark)
            if not found or mark in rest:
                parts = []  # an unexpected shape: fall back to reverse() for every row
                break
            parts.append(head)
        self._parts: tuple[str, ...] | None = (*parts, rest) if parts else None

    def __call__(self, *ids: int) -> str:
        parts = self._parts
        if parts is None or len(ids) != len(parts) - 1:
            return reverse(self._viewname, args=list(ids))
        out = parts[0]
        for value, part in zip(ids, parts[1:], strict=True):
            out += str(int(value)) + part
        return out
