from __future__ import annotations

import uuid
from typing import Any

from kapclinic.testing.matrix import Entry, expect, patient_kwargs, patient_scoped, public, roles

CLINICAL = ("prescriber", "therapist", "nurse")


def _with(instrument: str) -> Any:
    def kwargs(world: Any) -> dict[str, Any]:
        return {**patient_kwargs(world), "instrument": instrument}

    return kwargs


def _response(world: Any, item9: int = 2) -> Any:
    from kapclinic.core.actor import Actor
    from kapclinic.measures import services

    return services.response_submit(
        Actor.system(world.clinic),
        world.patient,
        instrument="PHQ-9",
        version=None,
        answers=[1, 1, 1, 1, 1, 1, 1, 1, item9],
        source="paper",
        entered_by=world.prescriber,
    )


def _alert(world: Any) -> dict[str, Any]:
    response = _response(world)
    return {"patient_id": world.patient.pk, "alert_id": response.safety_alert.pk}


def _done(world: Any) -> dict[str, Any]:
    return {"response_id": _response(world, item9=0).pk}


def _link(world: Any, used: bool = False) -> dict[str, Any]:
    import datetime as dt

    from kapclinic.core import clock
    from kapclinic.core.tokens import token_hash
    from kapclinic.measures.models import MeasureLink

    # A fresh token each call: the fuzz test builds the URL once per generated example in one database.
    token = f"matrix-token-{uuid.uuid4().hex}"
    link = MeasureLink.objects.create(
        clinic=world.clinic,
        patient=world.patient,
        instrument="PHQ-9",
        token_hash=token_hash(token),
        expires_at=clock.now() + dt.timedelta(hours=72),
    )
    if used:
        response = _response(world, item9=0)
        MeasureLink.objects.filter(pk=link.pk).update(used_at=clock.now(), response=response)
    return {"token": token}


PORTAL = expect(403, patient_user=200, other_patient_user=200)
CHART = patient_scoped(CLINICAL)
CHART_POST = patient_scoped(CLINICAL, ok=302)

MATRIX = {
    "measures:index": Entry(roles(CLINICAL)),
    "measures:outcomes": Entry(roles(("admin", "prescriber", "therapist"))),
    "measures:patient": Entry(CHART, kwargs=patient_kwargs),
    "measures:history": Entry(CHART, kwargs=_with("PHQ-9")),
    "measures:enter": Entry(CHART, kwargs=_with("PHQ-9")),
    "measures:send_link": Entry(CHART_POST, kwargs=_with("GAD-7"), method="post"),
    "measures:restart": Entry(CHART_POST, kwargs=_with("PHQ-9"), method="post"),
    "measures:acknowledge": Entry(CHART, setup=_alert),
    "measures:safety_plan": Entry(CHART, kwargs=patient_kwargs),
    "measures:schedule": Entry(CHART, kwargs=patient_kwargs),
    "measures:my": Entry(PORTAL),
    "measures:my_take": Entry(PORTAL, kwargs=lambda w: {"instrument": "GAD-7"}),
    "measures:my_done": Entry(expect(403, patient_user=200, other_patient_user=404), setup=_done),
    "measures:my_safety_plan": Entry(PORTAL),
    "measures:link": Entry(public(), setup=_link, note="anonymous token link; GET does not consume it"),
    "measures:link_done": Entry(public(), setup=lambda w: _link(w, used=True)),
}
