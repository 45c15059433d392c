"""Thin views for scheduling: day and week calendars, chairs, booking, appointment pages, reminders,
rooms and visit lengths, calendar feeds, a plan's series.

Over 600 lines: one thin view per page or action of the calendar; read view by view.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from kapclinic.audit.services import record_event
from kapclinic.core import clock, dates
from kapclinic.core.actor import Actor, actor_from_request
from kapclinic.core.concurrency import ConflictError
from kapclinic.core.errors import DomainError
from kapclinic.core.params import MAX_ID, id_param, param
from kapclinic.messaging.outbox import outbox_page, outbox_retry
from kapclinic.policy import ON_READ, Action, ClinicAction, can, clinic_can, open_patient, require_clinic
from kapclinic.scheduling import ical, rules, selectors, series, services
from kapclinic.scheduling.forms import (
    AppointmentForm,
    CancelForm,
    KindMinutesForm,
    ResourceForm,
    SeriesLineForm,
    SeriesSetupForm,
)
from kapclinic.scheduling.models import Appointment, CalendarFeed, Kind, Reminder, Status
from kapclinic.sessions.models import DosingSession
from kapclinic.sessions.selectors import (
    dose_handoff_lines,
    session_for_appointment,
    sessions_for_appointments,
)
from kapclinic.treatment import selectors as treatment_selectors
from kapclinic.treatment.models import TreatmentPlan

PX_PER_MINUTE = 1.2


def _day(request: HttpRequest) -> dt.date:
    """The ?date= day of a calendar view (today when absent); 400 with a sentence when not a date in the
    calendar's range (core.dates.browse_window)."""
    field = forms.DateField(required=False, validators=[dates.browse_validator("The date")])
    day: dt.date | None = param(request.GET, "date", field, "date")
    return day or clock.today()


def _filters(request: HttpRequest, actor: Actor) -> dict[str, Any]:
    staff_id = id_param(request.GET, "staff")
    resource_id = id_param(request.GET, "resource")
    return {"staff_id": staff_id, "resource_id": resource_id}


#: The day grid's empty slots, each a link to the booking form with its date, time and column prefilled.
SLOT_MINUTES = 30


def _free_slots(
    day_start: dt.datetime,
    day_end: dt.datetime,
    taken: list[tuple[dt.datetime, dt.datetime]],
    now: dt.datetime,
    key: str,
    pk: int | None,
) -> list[dict[str, Any]]:
    """The free half-hours of one column that have not yet passed, each with its booking link."""
    out = []
    step = dt.timedelta(minutes=SLOT_MINUTES)
    at = day_start
    column = {"staff_id": "staff", "resource_id": "resource"}[key]
    while at < day_end:
        end = at + step
        if end > now and not any(s < end and at < e for s, e in taken):
            local = timezone.localtime(at)
            query = {"date": local.date().isoformat(), "time": f"{local:%H:%M}"}
            if pk is not None:
                query[column] = str(pk)
            out.append(
                {
                    "top": int((at - day_start).total_seconds() / 60 * PX_PER_MINUTE),
                    "height": int(SLOT_MINUTES * PX_PER_MINUTE),
                    "time": f"{local:%H:%M}",
                    "url": f"{reverse('scheduling:new')}?{urlencode(query, safe=':')}",
                }
            )
        at = end
    return out


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """Day view: one column per clinician (or per room/chair with ?by=resource)."""
    require_clinic(request, ClinicAction.USE_CALENDAR)
    actor = actor_from_request(request)
    day = _day(request)
    filters = _filters(request, actor)
    by = "resource" if request.GET.get("by") == "resource" else "staff"
    cfg = services.schedule_settings(actor.clinic)
    start, end = selectors.day_bounds(day)
    appts = list(selectors.appointments_between(actor.clinic, start, end, **filters))
    seen = selectors.Visibility.of(actor, appts)
    staff = list(selectors.clinicians(actor.clinic))
    rooms = list(selectors.resources(actor.clinic))
    if by == "resource":
        heads: list[tuple[int | None, str]] = [
            (r.pk, r.name) for r in rooms if not filters["resource_id"] or r.pk == filters["resource_id"]
        ]
        heads.append((None, "Video / no room"))
        key = "resource_id"
    else:
        heads = [(u.pk, u.full_name) for u in staff if not filters["staff_id"] or u.pk == filters["staff_id"]]
        key = "staff_id"
    tz = timezone.get_current_timezone()
    midnight = dt.datetime.combine(day, dt.time.min, tzinfo=tz)

    def minute_of_day(when: dt.datetime) -> int:
        return int(min(max((when - midnight).total_seconds() / 60, 0), 24 * 60))

    first_hour, end_hour, outside = rules.visible_hours(
        ((minute_of_day(a.starts_at), minute_of_day(a.ends_at)) for a in appts),
        cfg.day_starts_hour,
        cfg.day_ends_hour,
    )
    day_start = midnight + dt.timedelta(hours=first_hour)
    day_end = midnight + dt.timedelta(hours=end_hour)
    hours = list(range(first_hour, end_hour))
    now = clock.now()
    columns = []
    for pk, title in heads:
        blocks = []
        taken: list[tuple[dt.datetime, dt.datetime]] = []
        for a in appts:
            if getattr(a, key) != pk:
                continue
            shown_start, shown_end = max(a.starts_at, day_start), min(a.ends_at, day_end)
            top = (shown_start - day_start).total_seconds() / 60 * PX_PER_MINUTE
            height = (shown_end - shown_start).total_seconds() / 60 * PX_PER_MINUTE
            blocks.append({"e": seen.entry(a), "top": int(top), "height": int(height)})
            taken.append((a.starts_at, a.ends_at))
        if blocks or pk is not None:
            columns.append(
                {
                    "title": title,
                    "blocks": blocks,
                    "slots": _free_slots(day_start, day_end, taken, now, key, pk),
                }
            )
    day_sessions = {
        pk: sess
        for pk, sess in sessions_for_appointments(a.pk for a in appts if a.kind == Kind.DOSING).items()
        if sess.state != "aborted"
    }
    seen_clinical = selectors.visible_ids(
        actor, {a.patient_id for a in appts if a.pk in day_sessions}, Action.VIEW_CLINICAL
    )
    record_event(actor, "list", object_type="schedule_day", detail=f"n={len(appts)}")
    return render(
        request,
        "scheduling/day.html",
        {
            "day": day,
            "prev": day - dt.timedelta(days=1),
            "next": day + dt.timedelta(days=1),
            "columns": columns,
            "hours": [{"h": h, "top": int((h - first_hour) * 60 * PX_PER_MINUTE)} for h in hours],
            "outside": outside,
            "usual": (cfg.day_starts_hour, cfg.day_ends_hour),
            "shown": (first_hour, end_hour),
            "height": int(len(hours) * 60 * PX_PER_MINUTE),
            "appointments": [
                {
                    "e": seen.entry(a),
                    "state": selectors.appointment_state(
                        a, day_sessions.get(a.pk), clinical=a.patient_id in seen_clinical
                    )
                    if a.patient_id in seen.named
                    else "",
                    "can_check_in": a.patient_id in seen.openable
                    and a.status == Status.BOOKED
                    and a.checked_in_at is None
                    and day == clock.today()
                    and a.pk not in day_sessions,
                    "can_no_show": a.patient_id in seen.openable
                    and a.status == Status.BOOKED
                    and a.checked_in_at is None
                    and a.starts_at <= now
                    and a.pk not in day_sessions,
                }
                for a in appts
            ],
            "staff": staff,
            "rooms": rooms,
            "by": by,
            "filters": filters,
            "can_book": clinic_can(actor, ClinicAction.USE_CALENDAR),
        },
    )


@login_required
def week_view(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.USE_CALENDAR)
    actor = actor_from_request(request)
    day = _day(request)
    monday = day - dt.timedelta(days=day.weekday())
    filters = _filters(request, actor)
    days = selectors.week(actor.clinic, monday, **filters)
    seen = selectors.Visibility.of(actor, (a for d in days for a in d.items))
    n = sum(len(d.items) for d in days)
    record_event(actor, "list", object_type="schedule_week", detail=f"n={n}")
    return render(
        request,
        "scheduling/week.html",
        {
            "monday": monday,
            "prev": monday - dt.timedelta(days=7),
            "next": monday + dt.timedelta(days=7),
            "days": [{"day": d.day, "items": [seen.entry(a) for a in d.items]} for d in days],
            "staff": selectors.clinicians(actor.clinic),
            "rooms": selectors.resources(actor.clinic),
            "filters": filters,
            "today": clock.today(),
        },
    )


def _session_url(appt: Appointment, session: DosingSession | None) -> str | None:
    if session is None:
        return None
    return reverse("sessions:detail", kwargs={"patient_id": appt.patient_id, "session_id": session.pk})


def _startable(appt: Appointment, session: DosingSession | None) -> bool:
    """A booked dosing appointment with no session, or only an aborted one (as the sessions service and
    the sessions list count it), can have its session started."""
    live = session is not None and session.state != "aborted"
    return not live and appt.kind == Kind.DOSING and appt.status == Status.BOOKED


def _chair_item(
    a: Appointment,
    session: DosingSession | None,
    seen: selectors.Visibility,
    handoff: dict[int, str] | None = None,
) -> dict[str, Any]:
    entry = seen.entry(a)
    clinical = a.patient_id in seen.clinical
    live = session if session is not None and session.state != "aborted" else None
    return {
        "handoff": (handoff or {}).get(live.pk) if clinical and live is not None else None,
        "a": a,
        "e": entry,
        "label": entry.label,
        "phase": selectors.shown_phase(a, session, seen),  # the appointment page's state, for this viewer
        "session": live if clinical else None,
        "session_url": _session_url(a, live) if clinical else None,
        "can_start": _startable(a, session) and a.patient_id in seen.monitor,
    }


@login_required
def chairs(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.USE_CALENDAR)
    actor = actor_from_request(request)
    day = _day(request)
    rows = selectors.chair_board(actor.clinic, day)
    seen = selectors.Visibility.of(actor, (a for r in rows for a, _s in r.items), chair_board=True)
    record_event(actor, "list", object_type="chair_board", detail=f"chairs={len(rows)}")
    # The dose hand-off of sessions waiting between the pre-dose checks and dosing (one query).
    handoff = dose_handoff_lines(
        s for r in rows for a, s in r.items if s is not None and a.patient_id in seen.clinical
    )
    return render(
        request,
        "scheduling/chairs.html",
        {
            "day": day,
            "prev": day - dt.timedelta(days=1),
            "next": day + dt.timedelta(days=1),
            "rows": [
                {
                    "chair": r.resource,
                    "items": [_chair_item(a, s, seen, handoff) for a, s in r.items],
                }
                for r in rows
            ],
            "now": clock.now(),
        },
    )


def _minutes(form: AppointmentForm, clinic: Any, kind: str) -> int:
    minutes = form.cleaned_data.get("minutes")
    return int(minutes) if minutes else services.kind_rules(clinic)[kind].default_minutes


@login_required
def new(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.USE_CALENDAR)
    actor = actor_from_request(request)
    initial: dict[str, Any] = {"date": _day(request), "time": dt.time(9, 0)}
    for name in ("patient", "staff", "resource"):
        if (pk := id_param(request.GET, name)) is not None:
            initial[name] = pk
    kinds = forms.ChoiceField(choices=Kind.choices, required=False)
    if (kind := param(request.GET, "kind", kinds)) is not None:
        initial["kind"] = kind
    # A free slot of the day grid links here with its time; a malformed time is refused like any parameter.
    initial["time"] = param(request.GET, "time", forms.TimeField(required=False)) or dt.time(9)
    form = AppointmentForm(request.POST or None, actor=actor, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            patient = form.cleaned_data["patient"]
            # The policy check for this patient (404 across clinics, 403 when not allowed); the
            # service writes the create event.
            patient = open_patient(request, patient.pk, Action.SCHEDULE, audit=None)
            kind = form.cleaned_data["kind"]
            repeat = form.cleaned_data.get("repeat") or 1
            if repeat > 1:
                done = _book_weekly(request, actor, form, patient, kind, repeat)
                if done is not None:
                    return done
                return render(
                    request,
                    "scheduling/form.html",
                    {"form": form, "title": "Book an appointment"},
                    status=400,
                )
            try:
                appt = services.appointment_book(
                    actor,
                    patient,
                    kind=kind,
                    starts_at=form.starts_at(),
                    minutes=_minutes(form, actor.clinic, kind),
                    staff=form.cleaned_data["staff"],
                    resource=form.cleaned_data["resource"],
                    modality=form.cleaned_data["modality"],
                    admin_note=form.cleaned_data["admin_note"],
                )
            except DomainError as exc:
                exc.add_to_form(form)
                _refused(request, patient)
            else:
                messages.success(request, f"{appt.get_kind_display()} booked for {patient.display_name}.")
                return redirect("scheduling:detail", appointment_id=appt.pk)
        status = 400
    return render(
        request, "scheduling/form.html", {"form": form, "title": "Book an appointment"}, status=status
    )


def _book_weekly(
    request: HttpRequest, actor: Actor, form: AppointmentForm, patient: Any, kind: str, repeat: int
) -> HttpResponse | None:
    """The booking form's "repeat weekly": ``repeat`` appointments a week apart at the same local time,
    each booked on its own through services.appointment_book; each refused date says why. Returns the
    redirect when at least one was booked, else None (the form re-renders with every date's reason)."""
    booked, refused = series.book_weekly(
        actor,
        patient,
        first=form.starts_at(),
        repeat=repeat,
        kind=kind,
        minutes=_minutes(form, actor.clinic, kind),
        staff=form.cleaned_data["staff"],
        resource=form.cleaned_data["resource"],
        modality=form.cleaned_data["modality"],
        admin_note=form.cleaned_data["admin_note"],
    )
    if not booked:
        for line in refused:
            form.add_error(None, line)
        _refused(request, patient)
        return None
    label = booked[0].get_kind_display()
    messages.success(
        request,
        f"{label} booked weekly for {patient.display_name}: {len(booked)} of {repeat} "
        f"({', '.join(f'{timezone.localtime(a.starts_at):%d %b}' for a in booked)}).",
    )
    for line in refused:
        messages.warning(request, line)
    return redirect("scheduling:detail", appointment_id=booked[0].pk)


def _refused(request: HttpRequest, patient: Any, obj: Any = None) -> None:
    """A refused write still read the patient's record: leave the request's one audit event."""
    actor = actor_from_request(request)
    kind = "" if obj is not None else "appointments"
    record_event(actor, "view", patient=patient, obj=obj, object_type=kind, detail="refused")


def _appointment(request: HttpRequest, appointment_id: int, *, audit: str | None = "view") -> Appointment:
    require_clinic(request, ClinicAction.USE_CALENDAR)
    clinic = getattr(request, "clinic", None)
    appt = (
        Appointment.objects.select_related(
            "patient", "staff", "resource", "clinic", "cancelled_by", "checked_in_by"
        )
        .filter(pk=appointment_id, clinic=clinic)
        .first()
    )
    if appt is None:
        raise Http404
    open_patient(request, appt.patient_id, Action.SCHEDULE, audit=audit, obj=appt if audit else None)
    return appt


@login_required
def detail(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appt = _appointment(request, appointment_id)
    actor = actor_from_request(request)
    clinical = can(actor, Action.VIEW_CLINICAL, appt.patient)
    session = session_for_appointment(appt.pk) if appt.kind == Kind.DOSING else None
    # Only an aborted session: the page offers a new start instead of a link to the aborted record.
    can_restart = session is not None and _startable(appt, session)
    return render(
        request,
        "scheduling/detail.html",
        {
            "a": appt,
            "reminders": list(appt.reminders.all()),
            "cancel_form": CancelForm(initial={"version": appt.version}),
            "clinical": clinical,
            "started": appt.starts_at <= clock.now(),
            "session": session,
            "session_phase": selectors.session_phase(session, clinical=clinical),
            "state": selectors.appointment_state(appt, session, clinical=clinical),
            "cancel_refused": services.live_session_problem(appt, "cancel it")
            if appt.kind == Kind.DOSING
            else None,
            "can_check_in": appt.status == Status.BOOKED
            and appt.checked_in_at is None
            and timezone.localtime(appt.starts_at).date() == clock.today()
            and (session is None or session.state == "aborted"),
            "session_url": _session_url(appt, session) if clinical and not can_restart else None,
            "aborted_url": _session_url(appt, session) if clinical and can_restart else None,
            "can_start": _startable(appt, session) and can(actor, Action.MONITOR_SESSION, appt.patient),
        },
    )


@login_required
def edit(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appt = _appointment(request, appointment_id, audit=ON_READ)
    actor = actor_from_request(request)
    local = timezone.localtime(appt.starts_at)
    initial = {
        "date": local.date(),
        "time": local.time(),
        "minutes": appt.minutes,
        "staff": appt.staff_id,
        "resource": appt.resource_id,
        "modality": appt.modality,
        "admin_note": appt.admin_note,
        "version": appt.version,
    }
    form = AppointmentForm(request.POST or None, actor=actor, editing=True, initial=initial)
    status = 200
    if request.method == "POST":
        status = 400
        if not form.is_valid():
            _refused(request, appt.patient, appt)
        else:
            try:
                services.appointment_reschedule(
                    actor,
                    appt,
                    expected_version=form.cleaned_data.get("version") or 0,
                    starts_at=form.starts_at(),
                    minutes=_minutes(form, actor.clinic, appt.kind),
                    staff=form.cleaned_data["staff"],
                    resource=form.cleaned_data["resource"],
                    modality=form.cleaned_data["modality"],
                    admin_note=form.cleaned_data["admin_note"],
                )
            except ConflictError as exc:
                form.add_error(None, str(exc))
                status = 409
                _refused(request, appt.patient, appt)
            except DomainError as exc:
                exc.add_to_form(form)
                _refused(request, appt.patient, appt)
            else:
                messages.success(request, "Appointment changed.")
                return redirect("scheduling:detail", appointment_id=appt.pk)
    return render(
        request,
        "scheduling/form.html",
        {
            "form": form,
            "title": f"Change {appt.get_kind_display().lower()} for {appt.patient.display_name}",
            "a": appt,
        },
        status=status,
    )


@login_required
@require_POST
def cancel(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appt = _appointment(request, appointment_id, audit=None)
    actor = actor_from_request(request)
    form = CancelForm(request.POST)
    if form.is_valid():
        try:
            services.appointment_cancel(
                actor, appt, expected_version=form.cleaned_data["version"], reason=form.cleaned_data["reason"]
            )
        except ConflictError as exc:
            _refused(request, appt.patient, appt)
            messages.error(request, str(exc))
        except DomainError as exc:
            _refused(request, appt.patient, appt)
            messages.error(
                request, " ".join(exc.messages + [e for v in exc.field_errors.values() for e in v])
            )
        else:
            messages.success(request, "Appointment cancelled; its reminder will not be sent.")
    else:
        _refused(request, appt.patient, appt)
        messages.error(request, "Give a reason for cancelling (it is kept with the appointment).")
    return redirect("scheduling:detail", appointment_id=appt.pk)


def _back(request: HttpRequest, appt: Appointment) -> HttpResponse:
    """Back to the page the form was on (the day view's list) when it is ours, else the appointment."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect("scheduling:detail", appointment_id=appt.pk)


@login_required
@require_POST
def check_in(request: HttpRequest, appointment_id: int) -> HttpResponse:
    """Front desk: the patient has arrived (issue 18)."""
    appt = _appointment(request, appointment_id, audit=None)
    actor = actor_from_request(request)
    try:
        versions = forms.IntegerField(min_value=0, max_value=MAX_ID, required=False)
        version = param(request.POST, "version", versions) or 0
        services.appointment_check_in(actor, appt, expected_version=version)
    except ConflictError as exc:
        _refused(request, appt.patient, appt)
        messages.error(request, str(exc))
    except DomainError as exc:
        _refused(request, appt.patient, appt)
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{appt.patient.display_name} checked in.")
    return _back(request, appt)


@login_required
@require_POST
def set_status(request: HttpRequest, appointment_id: int) -> HttpResponse:
    appt = _appointment(request, appointment_id, audit=None)
    actor = actor_from_request(request)
    try:
        services.appointment_set_status(
            actor,
            appt,
            expected_version=param(
                request.POST, "version", forms.IntegerField(min_value=0, max_value=MAX_ID, required=False)
            )
            or 0,
            status=request.POST.get("status", ""),
        )
    except ConflictError as exc:
        _refused(request, appt.patient, appt)
        messages.error(request, str(exc))
    except DomainError as exc:
        _refused(request, appt.patient, appt)
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Appointment updated.")
    return _back(request, appt)


@login_required
def patient_appointments(request: HttpRequest, patient_id: int) -> HttpResponse:
    require_clinic(request, ClinicAction.USE_CALENDAR)
    patient = open_patient(request, patient_id, Action.SCHEDULE, object_type="appointments")
    page = Paginator(selectors.patient_appointments(patient).order_by("-starts_at", "-id"), 50).get_page(
        request.GET.get("page")
    )
    plan = treatment_selectors.signed_plan(patient)
    return render(
        request,
        "scheduling/patient.html",
        {"patient": patient, "page": page, "now": clock.now(), "plan": plan},
    )


@login_required
def reminders(request: HttpRequest) -> HttpResponse:
    return outbox_page(
        request,
        ClinicAction.VIEW_REMINDERS,
        lambda clinic, problems: selectors.reminders_for_staff(clinic, problems_only=problems),
        template="scheduling/reminders.html",
        object_type="reminders",
    )


@login_required
@require_POST
def reminder_retry(request: HttpRequest, reminder_id: int) -> HttpResponse:
    return outbox_retry(
        request,
        ClinicAction.VIEW_REMINDERS,
        Reminder,
        reminder_id,
        services.reminder_retry,
        queued="The reminder was queued to be sent again.",
        back_to=f"{reverse('scheduling:reminders')}?show=all",
    )


@login_required
def rooms(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.MANAGE_CLINIC)
    actor = actor_from_request(request)
    form = ResourceForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.resource_create(
                    actor, name=form.cleaned_data["name"], kind=form.cleaned_data["kind"]
                )
            except DomainError as exc:
                for name, errs in exc.field_errors.items():
                    for err in errs:
                        form.add_error(name, err)
            else:
                messages.success(request, "Added.")
                return redirect("scheduling:rooms")
    return render(
        request,
        "scheduling/rooms.html",
        {"form": form, "resources": selectors.resources(actor.clinic, active_only=False)},
        status=status,
    )


@login_required
def lengths(request: HttpRequest) -> HttpResponse:
    """Admin: the clinic's default length for each kind of appointment (issue 18)."""
    require_clinic(request, ClinicAction.MANAGE_CLINIC)
    actor = actor_from_request(request)
    form = KindMinutesForm(request.POST or None, clinic=actor.clinic)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.kind_minutes_update(actor, dict(form.cleaned_data))
            except DomainError as exc:
                for name, errs in exc.field_errors.items():
                    for err in errs:
                        form.add_error(name if name in form.fields else None, err)
            else:
                messages.success(request, "Appointment lengths saved.")
                return redirect("scheduling:lengths")
    return render(request, "scheduling/lengths.html", {"form": form}, status=status)


@login_required
def my_feed(request: HttpRequest) -> HttpResponse:
    require_clinic(request, ClinicAction.CLINICAL_WORK)
    actor = actor_from_request(request)
    feed = CalendarFeed.objects.filter(user=actor.user, clinic=actor.clinic).first()
    url = None
    if request.method == "POST":
        token = services.feed_reset(actor)
        url = request.build_absolute_uri(reverse("scheduling:feed", kwargs={"token": token}))
        feed = CalendarFeed.objects.filter(user=actor.user, clinic=actor.clinic).first()
    return render(request, "scheduling/my_feed.html", {"feed": feed, "url": url})


def feed(request: HttpRequest, token: str) -> HttpResponse:
    """The secret iCalendar address (no sign-in: calendar apps cannot log in)."""
    found = services.feed_resolve(token)
    if found is None:
        return HttpResponse(
            "This calendar address is not valid. It may have been reset; "
            "get the new address from the clinic portal.",
            status=404,
            content_type="text/plain; charset=utf-8",
        )
    owner: Actor | None = None  # None: a patient's own feed, all of it theirs
    if found.user is not None:
        role = selectors.staff_role(found.user, found.clinic)
        if role is None:
            raise Http404
        owner = Actor(user=found.user, clinic=found.clinic, role=role, request_id="calendar-feed")
    appts = list(selectors.feed_appointments(found))
    # A staff feed carries only what its owner may see now (their current role and care teams).
    named = None if owner is None else selectors.visible_ids(owner, {a.patient_id for a in appts})
    body = ical.render_feed(found, appts, named=named)
    system = Actor.system(found.clinic, "calendar-feed")
    if found.patient_id:
        record_event(system, "view", patient=found.patient, obj=found, detail=f"ical n={len(appts)}")
    else:
        record_event(system, "list", obj=found, detail=f"ical staff n={len(appts)}")
    now = clock.now()
    if found.last_used_at is None or now - found.last_used_at > dt.timedelta(hours=1):
        CalendarFeed.objects.filter(pk=found.pk).update(last_used_at=now)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def plan_series(request: HttpRequest, patient_id: int, plan_id: int) -> HttpResponse:
    """Book a signed plan's proposed appointments in one step (issue 18): suggested dates from the plan's
    spacing, each line's conflicts previewed, then "Book all that are free" (each line on its own)."""
    require_clinic(request, ClinicAction.USE_CALENDAR)
    posting = request.method == "POST"
    patient = open_patient(request, patient_id, Action.SCHEDULE, audit=ON_READ, object_type="plan_series")
    actor = actor_from_request(request)
    plan = get_object_or_404(TreatmentPlan, pk=plan_id, patient=patient)
    proposals = list(plan.proposals.all())
    booked = series.booked_by_proposal(plan)
    setup = SeriesSetupForm(
        request.GET if "first" in request.GET else None,
        actor=actor,
        initial={"first": clock.today() + dt.timedelta(days=1), "time": dt.time(9, 0)},
    )
    line_forms: dict[int, SeriesLineForm] = {}
    problems: dict[int, list[str]] = {}
    just_booked: list[series.LineResult] = []
    errors: list[str] = []
    status = 200
    try:
        series.check_plan(plan)
    except DomainError as exc:
        errors.append(str(exc))
    open_props = [p for p in proposals if p.pk not in booked]

    def requests_from(forms_: dict[int, SeriesLineForm], data: dict[int, dict[str, Any]]) -> list[Any]:
        by_pk = {p.pk: p for p in open_props}
        out = []
        for pk, d in data.items():
            if d.get("book"):
                starts = dt.datetime.combine(d["date"], d["time"], tzinfo=timezone.get_current_timezone())
                out.append(series.LineRequest(by_pk[pk], starts, d["staff"], d["resource"]))
        return out

    if errors:
        status = 400 if posting else 200
        if posting:
            _refused(request, patient, plan)
    elif posting:
        line_forms = {p.pk: SeriesLineForm(request.POST, prefix=f"l{p.pk}", actor=actor) for p in open_props}
        if not all(f.is_valid() for f in line_forms.values()):
            status = 400
            errors.append("Some lines need a correction; see below.")
            _refused(request, patient, plan)
        else:
            reqs = requests_from(line_forms, {pk: f.cleaned_data for pk, f in line_forms.items()})
            if not reqs:
                status = 400
                errors.append("Tick at least one appointment to book.")
                _refused(request, patient, plan)
            elif request.POST.get("action") == "check":
                problems = series.preview(actor, patient, reqs)
                _refused(request, patient, plan)  # the request's one audit event: a read
            else:
                results = series.book_series(actor, patient, plan, reqs)
                just_booked = [r for r in results if r.booked]
                problems = {r.proposal.pk: r.problems for r in results if not r.booked}
                if not just_booked:
                    _refused(request, patient, plan)
                booked = series.booked_by_proposal(plan)
                n, total = len(just_booked), len(results)
                if n == total:
                    messages.success(request, f"Booked {n} appointment{'s' if n != 1 else ''} of the plan.")
                else:
                    messages.warning(
                        request,
                        f"Booked {n} of {total}; {total - n} not booked: each says why below. "
                        "Change its date, time, clinician or room and book again.",
                    )
    elif setup.is_bound:
        if setup.is_valid():
            d = setup.cleaned_data
            sugg = series.suggestions(plan, d["first"])
            data: dict[int, dict[str, Any]] = {}
            for p in open_props:
                dosing = p.kind == "dosing"
                data[p.pk] = {
                    "book": True,
                    "date": sugg[p.pk],
                    "time": d["time"],
                    "staff": d["dosing_staff"] if dosing else d["staff"],
                    "resource": d["chair"] if dosing else d["room"],
                }
                line_forms[p.pk] = SeriesLineForm(
                    prefix=f"l{p.pk}",
                    actor=actor,
                    initial={k: (v.pk if hasattr(v, "pk") else v) for k, v in data[p.pk].items()},
                )
            problems = series.preview(actor, patient, requests_from(line_forms, data))
        else:
            status = 400
    rows = [
        {
            "p": p,
            "kind": series.proposal_kind_label(p),
            "booked": booked.get(p.pk),
            "form": None if p.pk in booked else line_forms.get(p.pk),
            "problems": problems.get(p.pk),
        }
        for p in proposals
    ]
    return render(
        request,
        "scheduling/plan_series.html",
        {
            "patient": patient,
            "plan": plan,
            "setup": setup,
            "rows": rows,
            "errors": errors,
            "has_lines": any(pk not in booked for pk in line_forms),
            "open_count": len([p for p in proposals if p.pk not in booked]),
            "can_view_plan": can(actor, Action.VIEW_CLINICAL, patient),
        },
        status=status,
    )
