"""Video appointments (issue 17): how a clinic's links are made and when they may be shown.

No video runs here. A clinic chooses either each clinician's personal room URL or an https URL pattern
of its own Jitsi Meet with a random room per appointment. The link is shown to the appointment's
patient and to staff who may open the appointment only from `minutes_before` the start until the end,
on a signed-in page (never a public one); reminders and iCal events carry the address of that page,
not the room itself, so a forwarded email or a synced calendar does not open the room early or to
someone else."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from kapclinic.audit.services import record_event
from kapclinic.core import clock
from kapclinic.core.actor import Actor
from kapclinic.core.errors import DomainError
from kapclinic.scheduling.models import (
    Appointment,
    ClinicianRoom,
    Modality,
    Status,
    TelehealthSettings,
    VideoLinkMode,
)

ROOM_PLACEHOLDER = "{room}"


def _refused(message: str, field: str | None = None) -> DomainError:
    """A refusal: the sentence on ``field`` of the form when there is one, else at the top."""
    return DomainError(field_errors={field: [message]}) if field else DomainError(message)


def settings_for(clinic: Any) -> TelehealthSettings:
    row = TelehealthSettings.objects.filter(clinic=clinic).first()
    return row or TelehealthSettings(clinic=clinic)


def https_problem(url: str, what: str) -> str | None:
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname:
        return f"{what}: must be a full https:// address (for example https://meet.example.org/...)."
    if any(c.isspace() for c in url.strip()):
        return f"{what}: must not contain spaces."
    return None


def pattern_problem(pattern: str) -> str | None:
    problem = https_problem(pattern, "Jitsi URL pattern")
    if problem:
        return problem
    if ROOM_PLACEHOLDER not in pattern:
        return (
            "Jitsi URL pattern: put {room} where the room name goes (e.g. https://meet.example.org/{room})."
        )
    if ROOM_PLACEHOLDER in urlsplit(pattern).netloc:
        return "Jitsi URL pattern: {room} belongs in the path, not in the host name."
    return None


@transaction.atomic
def settings_update(
    actor: Actor, *, mode: str, jitsi_pattern: str, minutes_before: int
) -> TelehealthSettings:
    jitsi_pattern = jitsi_pattern.strip()
    if mode not in VideoLinkMode.values:
        raise _refused("Choose how video links are made.", "mode")
    if mode == VideoLinkMode.JITSI or jitsi_pattern:
        problem = pattern_problem(jitsi_pattern)
        if problem:
            raise _refused(problem, "jitsi_pattern")
    if not 0 <= minutes_before <= 120:
        raise _refused("Show the link from: 0 to 120 minutes before the start.", "minutes_before")
    row, _ = TelehealthSettings.objects.select_for_update().get_or_create(clinic=actor.clinic)
    row.mode, row.jitsi_pattern, row.minutes_before = mode, jitsi_pattern, minutes_before
    row.updated_at, row.updated_by = clock.now(), actor.user
    row.save()
    record_event(actor, "update", obj=row, detail=f"mode={mode} minutes_before={minutes_before}")
    return row


@transaction.atomic
def room_set(actor: Actor, url: str) -> ClinicianRoom | None:
    url = url.strip()
    user = actor.require_user()
    if not url:
        ClinicianRoom.objects.filter(clinic=actor.clinic, user=user).delete()
        record_event(actor, "update", object_type="scheduling.clinicianroom", detail="removed")
        return None
    problem = https_problem(url, "Personal room URL")
    if problem:
        raise _refused(problem, "url")
    row, _ = ClinicianRoom.objects.update_or_create(
        clinic=actor.clinic, user=user, defaults={"url": url, "updated_at": clock.now()}
    )
    record_event(actor, "update", obj=row, detail="set")
    return row


@dataclass(frozen=True)
class VideoLink:
    opens_at: dt.datetime
    url: str | None  # the room, only while open
    problem: str | None  # why there is no room although it is time (no personal room, no pattern)


def _room_name(appt: Appointment) -> str:
    if not appt.video_room:
        token = secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")
        Appointment.objects.filter(pk=appt.pk, video_room="").update(video_room=f"kap{token}")
        appt.video_room = Appointment.objects.values_list("video_room", flat=True).get(pk=appt.pk)
    return appt.video_room


def video_link(appt: Appointment, now: dt.datetime | None = None) -> VideoLink | None:
    """None for an appointment that is not a booked video appointment."""
    if appt.modality != Modality.VIDEO or appt.status != Status.BOOKED:
        return None
    now = now or clock.now()
    conf = settings_for(appt.clinic)
    opens_at = appt.starts_at - dt.timedelta(minutes=conf.minutes_before)
    if now < opens_at or now > appt.ends_at:
        return VideoLink(opens_at, None, None)
    if conf.mode == VideoLinkMode.JITSI:
        if pattern_problem(conf.jitsi_pattern):
            return VideoLink(opens_at, None, "The clinic has not set its video link pattern yet.")
        return VideoLink(opens_at, conf.jitsi_pattern.replace(ROOM_PLACEHOLDER, _room_name(appt)), None)
    url = (
        ClinicianRoom.objects.filter(clinic=appt.clinic, user_id=appt.staff_id)
        .values_list("url", flat=True)
        .first()
    )
    if not url:
        return VideoLink(
            opens_at, None, "The clinician has not set a video room yet: please call the clinic."
        )
    return VideoLink(opens_at, url, None)


def patient_join_url(appt: Appointment) -> str:
    """The signed-in portal page that opens the room in time (for reminders and the patient's feed)."""
    return settings.SITE_URL + reverse("scheduling:my_video", kwargs={"appointment_id": appt.pk})


def staff_join_url(appt: Appointment) -> str:
    return settings.SITE_URL + reverse("scheduling:video", kwargs={"appointment_id": appt.pk})
