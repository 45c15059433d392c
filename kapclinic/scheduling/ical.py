"""iCalendar rendering of a calendar feed (icalendar library)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from icalendar import Calendar, Event

from kapclinic.core import clock
from kapclinic.scheduling import telehealth
from kapclinic.scheduling.models import Appointment, Modality
from kapclinic.scheduling.selectors import BUSY


def render_feed(
    feed: Any, appointments: Iterable[Appointment], *, named: Collection[int] | None = None
) -> bytes:
    """The feed as iCalendar. ``named``: for a staff feed, the ids of the patients its owner may see
    (policy, computed once by the caller); any other appointment is only a busy slot."""
    cal = Calendar()
    cal.add("prodid", "-//KAP Clinic//Appointments//EN")
    cal.add("version", "2.0")
    cal.add(
        "x-wr-calname", f"{feed.clinic.name}" if feed.patient_id else f"{feed.clinic.name}: my appointments"
    )
    stamp = clock.now()
    for appt in appointments:
        ev = Event()
        ev.add("uid", f"appointment-{appt.pk}@{feed.clinic.slug}.kapclinic")
        ev.add("dtstamp", stamp)
        ev.add("dtstart", appt.starts_at)
        ev.add("dtend", appt.ends_at)
        if feed.patient_id:
            if feed.show_details:
                ev.add("summary", f"{appt.get_kind_display()} at {feed.clinic.name}")
                details = [f"With {appt.staff.full_name}.", *appt.preparation]
                ev.add("description", "\n".join(details))
                if appt.modality == Modality.IN_PERSON and feed.clinic.address:
                    ev.add("location", feed.clinic.address.replace("\n", ", "))
            else:
                # Only this, so that a shared or synced calendar reveals nothing about the treatment.
                ev.add("summary", f"Appointment at {feed.clinic.name}")
            if appt.modality == Modality.VIDEO:
                # The signed-in join page (an opaque address), never the room: it opens the room only
                # shortly before the start, for the signed-in patient.
                ev.add("url", telehealth.patient_join_url(appt))
        else:
            if named is not None and appt.patient_id in named:
                # Staff feeds: record number, never the patient's name (calendars sync to phones).
                ev.add("summary", f"{appt.get_kind_display()} · {appt.patient.mrn}")
            else:
                # A patient the owner may not see (policy): the time is taken, nothing more.
                ev.add("summary", BUSY)
            ev.add("location", appt.resource.name if appt.resource else appt.get_modality_display())
            if appt.modality == Modality.VIDEO and named is not None and appt.patient_id in named:
                ev.add("url", telehealth.staff_join_url(appt))
        cal.add_component(ev)
    return bytes(cal.to_ical())
