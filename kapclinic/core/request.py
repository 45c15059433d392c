"""Typed access to what the middleware puts on the request (django-stubs does not know it).

RequestIdMiddleware sets ``request.request_id``; ClinicContextMiddleware sets ``request.clinic``,
``request.role``, ``request.patient`` and ``request.user_clinics``. ``KapRequest`` declares them for
the type checker only: at run time every request is a plain ``HttpRequest``, so code casts to it
(``cast(KapRequest, request)``) rather than annotating views with it."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.http import HttpRequest

if TYPE_CHECKING:
    from kapclinic.accounts.models import Clinic
    from kapclinic.patients.models import Patient


class KapRequest(HttpRequest):
    request_id: str
    clinic: Clinic | None
    role: str | None
    patient: Patient | None
    user_clinics: tuple[Clinic, ...]


def request_clinic(request: HttpRequest) -> Clinic | None:
    """The clinic the signed-in user is working in (``request.clinic``)."""
    return cast(KapRequest, request).clinic


def request_patient(request: HttpRequest) -> Patient:
    """The signed-in patient's own record (``request.patient``); 403 (audited) for anyone not signed in as
    a patient."""
    from kapclinic.accounts.models import Role
    from kapclinic.policy import refuse

    patient = getattr(request, "patient", None)
    if getattr(request, "role", None) != Role.PATIENT or patient is None:
        raise refuse(request, "This page is for patients.")
    return cast("Patient", patient)
