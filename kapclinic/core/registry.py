"""Extension points other apps register into from AppConfig.ready().

- Dashboard widgets: blocks on the staff home page (alerts, caseload, today's sessions, ...).
- Chart panels: sections of the patient chart (measures, sessions, notes, ...).
Each entry names the policy Action the viewer needs; the host view checks it through kapclinic.policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Widget:
    key: str
    title: str
    template: str
    context: Callable[..., dict[str, Any] | None]  # None: nothing to show today, the card is left out
    roles: frozenset[str]
    order: int = 100


@dataclass(frozen=True)
class ChartPanel:
    key: str
    title: str
    template: str
    context: Callable[..., dict[str, Any]]  # (request, patient) -> dict
    action: str  # a kapclinic.policy.Action value the viewer must hold for this patient
    order: int = 100


_widgets: dict[str, Widget] = {}
_panels: dict[str, ChartPanel] = {}


def register_dashboard_widget(widget: Widget) -> None:
    _widgets[widget.key] = widget


def register_chart_panel(panel: ChartPanel) -> None:
    _panels[panel.key] = panel


def dashboard_widgets(role: str | None) -> list[Widget]:
    return sorted((w for w in _widgets.values() if role in w.roles), key=lambda w: (w.order, w.key))


def chart_panels() -> list[ChartPanel]:
    return sorted(_panels.values(), key=lambda p: (p.order, p.key))
