"""Every write of the measures app: transactional, audited, one audit event per call.

Over 600 lines: the episode-outcome paths (``_appended_outcome`` and the full recompute) and the
response writes that call them must stay side by side; the sections below are the seams if it grows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from kapclinic.audit.services import record_event
from kapclinic.clinical import outcomes
from kapclinic.clinical.instruments import (
    FLAG_ITEM9_POSITIVE,
    FLAG_ITEM9_URGENT,
    FLAG_PROBABLE_PTSD,
    FLAG_SCREEN_POSITIVE,
    AnswerError,
    ScoringSettings,
    UnknownInstrumentError,
    get_instrument,
    score,
)
from kapclinic.core import clock, request_cache
from kapclinic.core.actor import Actor
from kapclinic.core.concurrency import save_versioned
from kapclinic.core.errors import DomainError
from kapclinic.core.tokens import token_hash
from kapclinic.measures import hooks
from kapclinic.measures.models import (
    OUTCOME_FIELDS,
    AlertAction,
    AlertRoute,
    Episode,
    EscalationReason,
    InstrumentResponse,
    ItemAnswer,
    MeasureLink,
    MeasurementSchedule,
    MeasureSettings,
    OutcomeConfig,
    ResponseSource,
    SafetyAlert,
    SafetyPlan,
)
from kapclinic.messaging.models import MessageKind
from kapclinic.messaging.services import queue
from kapclinic.patients.models import Patient, TimelineCategory
from kapclinic.patients.services import add_timeline_event

logger = logging.getLogger(__name__)


class LinkError(DomainError):
    def __init__(self, kind: str, sentence: str) -> None:
        self.kind = kind  # "unknown", "used", "expired"
        super().__init__(sentence)


# ---------------------------------------------------------------- settings


def measure_settings(clinic: Any) -> MeasureSettings:
    """The clinic's settings row, or an unsaved one with the cited defaults. Accepts a clinic or its id."""
    clinic_id = getattr(clinic, "pk", clinic)

    def load() -> MeasureSettings:
        found = MeasureSettings.objects.filter(clinic_id=clinic_id).first()
        return found if found is not None else MeasureSettings(clinic_id=clinic_id)

    return request_cache.remember(("measure_settings", clinic_id), load)


def scoring_settings_for(clinic: Any, cfg: MeasureSettings | None = None) -> ScoringSettings:
    cfg = cfg or measure_settings(clinic)
    return ScoringSettings(
        item9_urgent_min=cfg.item9_urgent_min, pcl5_probable_ptsd_min=cfg.pcl5_probable_ptsd_min
    )


def outcome_configs(clinic: Any) -> dict[str, OutcomeConfig]:
    """The clinic's outcome-rule override rows by instrument, read in one query (at most one row per
    instrument) and remembered for the rest of the request, so a page showing every instrument reads
    them once instead of once per instrument."""
    clinic_id = getattr(clinic, "pk", clinic)
    return request_cache.remember(
        ("outcome_configs", clinic_id),
        lambda: {row.instrument: row for row in OutcomeConfig.objects.filter(clinic_id=clinic_id)},
    )


def outcome_settings_for(clinic: Any, instrument: str) -> outcomes.OutcomeSettings:
    """Outcome rules for one instrument: the clinic's override row or the cited defaults."""
    row = outcome_configs(clinic).get(instrument)
    if row is None:
        base = outcomes.DEFAULT_OUTCOME_SETTINGS[instrument]
        if instrument == "PCL-5":  # remission below the clinic's probable-PTSD cut-off (ref §4.4)
            return outcomes.outcome_settings(
                instrument, remission_below=measure_settings(clinic).pcl5_probable_ptsd_min
            )
        return base
    return outcomes.outcome_settings(
        instrument,
        remission_below=row.remission_below,
        response_min_percent_drop=row.response_min_percent_drop,
        response_min_point_drop=row.response_min_point_drop,
        rci_sd=row.rci_sd,
        rci_r=row.rci_r,
        rc_min_points=row.rc_min_points,
        relapse_consecutive=row.relapse_consecutive,
        source="clinic setting",
    )


def link_hours(clinic: Any) -> int:
    return measure_settings(clinic).link_hours or int(settings.MEASURE_LINK_HOURS)


# ---------------------------------------------------------------- responses


def _current_episode(patient: Patient, instrument: str) -> Episode:
    episode = (
        Episode.objects.select_for_update()
        .filter(patient=patient, instrument=instrument, ended_at__isnull=True)
        .order_by("-started_at", "-id")
        .first()
    )
    if episode is not None and episode.protocol and episode.route:
        return episode  # nothing to fill from the plan: its dimensions are not read
    dims = hooks.plan_dimensions(patient)
    if episode is not None:
        # The baseline is usually taken at intake, before any plan exists: fill the cohort dimensions
        # from the plan once it is signed (an episode's protocol is never overwritten; the indication
        # then follows the plan, which names the indication being treated).
        missing = {k: dims[k] for k in ("protocol", "route") if dims.get(k) and not getattr(episode, k)}
        if missing:
            if "indication" in dims:
                missing["indication"] = dims["indication"]
            for k, value in missing.items():
                setattr(episode, k, value[: Episode._meta.get_field(k).max_length])  # type: ignore[union-attr]
            episode.save(update_fields=list(missing))
        return episode
    indication = dims.get("indication", "")
    if not indication:
        diagnosis = patient.diagnoses.filter(status="active").order_by("recorded_at", "id").first()
        indication = diagnosis.icd10 if diagnosis else ""
    return Episode.objects.create(
        clinic_id=patient.clinic_id,
        patient=patient,
        instrument=instrument,
        indication=indication[:10],
        protocol=dims.get("protocol", "")[:120],
        route=dims.get("route", "")[:20],
    )


_EPISODE_SUMMARY_FIELDS = [
    "baseline",
    "baseline_total",
    "latest_total",
    "followup_count",
    "responded",
    "sessions_to_response",
    "latest_remission",
    "relapsed",
    "outcome_rules",
]


def outcome_rules_key(cfg: outcomes.OutcomeSettings) -> str:
    """A short fingerprint of the outcome rules an episode's stored outcomes were computed with."""
    return hashlib.sha256(repr(cfg).encode()).hexdigest()[:16]


def _outcome_columns(oc: outcomes.ChangeOutcome, relapse: bool) -> dict[str, Any]:
    """A follow-up's OUTCOME_FIELDS values: its change from the baseline and whether it is a relapse."""
    return {
        "is_baseline": False,
        "change": oc.change,
        "percent_change": oc.percent_change,
        "is_response": oc.response,
        "is_remission": oc.remission,
        "reliable_change": oc.reliable_change.category.value,
        "is_relapse": relapse,
    }


# Episode outcomes are computed on two paths, and only two, because a submission must cost the same
# however long the history is (measures/tests/test_scale.py; the benchmark's growth target):
# - the newest response: ``_appended_outcome`` works its outcome out before the INSERT and
#   ``_episode_appended`` updates the summary (a constant number of queries);
# - anything else (a back-dated paper entry, changed rules, no baseline yet, a repair):
#   ``episode_recompute`` recomputes the trajectory from the pure functions.
# Both call clinical.outcomes; test_incremental_outcomes_equal_full_recompute_on_random_history keeps
# them equal.


def episode_recompute(episode: Episode, new: InstrumentResponse | None = None) -> None:
    """Recompute the episode's outcome columns and summary from its whole trajectory, after ``new``
    (a response that was not the episode's newest, see ``_appended_outcome``) was stored, or with
    ``new=None`` from scratch.

    When the stored outcomes follow the current rules, only rows from ``new`` on are written (earlier
    rows keep their baseline and verdicts); otherwise every row is."""
    cfg = outcome_settings_for(episode.clinic_id, episode.instrument)
    key = outcome_rules_key(cfg)
    stored_are_current = (
        episode.baseline_id is not None
        and episode.baseline_total is not None
        and episode.outcome_rules == key
    )
    rows = list(episode.responses.order_by("completed_at", "id"))
    if not rows:
        return
    base, follow = rows[0], rows[1:]
    base.is_baseline, base.change, base.percent_change = True, 0, None
    base.is_response, base.is_remission, base.reliable_change, base.is_relapse = None, None, "", False
    changes = [outcomes.change_from_baseline(base.total, row.total, cfg) for row in follow]
    flags = outcomes.relapse_flags([oc.response for oc in changes], cfg.relapse_consecutive)
    for row, oc, flag in zip(follow, changes, flags, strict=True):
        for f, value in _outcome_columns(oc, flag).items():
            setattr(row, f, value)
    # Rows before a back-dated response keep their baseline and earlier verdicts: nothing changes there.
    at = {r.pk: i for i, r in enumerate(rows)}
    first = at[new.pk] if new is not None and stored_are_current and new.pk in at else 0
    InstrumentResponse.objects.bulk_update(rows[first:], OUTCOME_FIELDS)
    if new is not None and new.pk in at:
        for f in OUTCOME_FIELDS:
            setattr(new, f, getattr(rows[at[new.pk]], f))
    first_response = next((r for r in follow if r.is_response), None)
    episode.baseline = base
    episode.baseline_total = base.total
    episode.latest_total = rows[-1].total
    episode.followup_count = len(follow)
    episode.responded = first_response is not None
    episode.sessions_to_response = first_response.sessions_before if first_response else None
    episode.latest_remission = bool(follow and follow[-1].is_remission)
    episode.relapsed = any(flags)
    episode.outcome_rules = key
    episode.save(update_fields=_EPISODE_SUMMARY_FIELDS)


def _is_relapse(recent: list[tuple[bool | None, bool]], response: bool | None, window: int) -> bool:
    """Whether a new follow-up with verdict ``response`` is a relapse, given the earlier follow-ups'
    ``(is_response, is_relapse)``, newest first (at most ``window`` of them). A relapse resets the state;
    a response verdict starts it; more than ``window`` misses in a row would have been a relapse already."""
    prefix: list[bool | None] = []
    for misses, (verdict, relapse) in enumerate(recent):
        if relapse:
            break
        if verdict:
            prefix = [True] + [None] * misses
            break
    return outcomes.relapse_flags([*prefix, response], window)[-1]


def _appended_outcome(episode: Episode, completed_at: dt.datetime, total: int) -> dict[str, Any] | None:
    """The OUTCOME_FIELDS of a response about to be stored as the newest of ``episode``, worked out
    before the row is written so the INSERT carries them (no UPDATE afterwards).

    ``None`` when the episode has no baseline yet, its outcomes were stored under other rules, or a stored
    response is later than ``completed_at``: the caller then stores the row and calls
    ``episode_recompute``. A stored response at the same instant is earlier in the episode's order
    (completed_at, id): the row about to be inserted takes a newer id, and the episode row is locked, so
    no other submission to this episode can interleave. One query reads both facts: the newest
    ``relapse_consecutive + 1`` rows of the episode (the newest says whether anything is later; the
    follow-ups among them give the relapse state, since the only baseline row of an episode is its
    earliest).
    """
    if episode.baseline_id is None or episode.baseline_total is None:
        return None
    cfg = outcome_settings_for(episode.clinic_id, episode.instrument)
    if episode.outcome_rules != outcome_rules_key(cfg):
        return None
    window = cfg.relapse_consecutive
    newest = list(
        episode.responses.order_by("-completed_at", "-id").values_list(
            "completed_at", "is_baseline", "is_response", "is_relapse"
        )[: window + 1]
    )
    if newest and newest[0][0] > completed_at:
        return None
    oc = outcomes.change_from_baseline(episode.baseline_total, total, cfg)
    recent = [(verdict, relapse) for _at, baseline, verdict, relapse in newest if not baseline][:window]
    return _outcome_columns(oc, _is_relapse(recent, oc.response, window))


def _episode_appended(episode: Episode, new: InstrumentResponse) -> None:
    """Bring the episode summary up to date after ``new`` was stored, with the outcome from
    ``_appended_outcome``, as the episode's newest response."""
    if new.is_response and not episode.responded:
        episode.responded = True
        episode.sessions_to_response = new.sessions_before
    episode.latest_total = new.total
    episode.followup_count += 1
    episode.latest_remission = bool(new.is_remission)
    episode.relapsed = episode.relapsed or new.is_relapse
    episode.save(update_fields=_EPISODE_SUMMARY_FIELDS[2:])


def _parse_answers(instrument: str, version: str | None, answers: Sequence[int | None], clinic: Any) -> Any:
    try:
        inst = get_instrument(instrument, version)
    except UnknownInstrumentError as exc:
        raise DomainError(str(exc)) from None
    try:
        result = score(inst, answers, scoring_settings_for(clinic))
    except AnswerError as exc:
        raise DomainError(exc.errors) from None
    if result.missing_items:
        items = ", ".join(str(n) for n in result.missing_items)
        raise DomainError(f"Item(s) {items} have no answer: every {inst.key} item must be answered.")
    return inst, result


@transaction.atomic
def response_submit(
    actor: Actor,
    patient: Patient,
    *,
    instrument: str,
    version: str | None,
    answers: Sequence[int | None],
    source: str,
    entered_by: Any = None,
    completed_at: dt.datetime | None = None,
    link: MeasureLink | None = None,
    submission: str | None = None,
) -> InstrumentResponse:
    """Score and store one administration; raise a safety alert for PHQ-9 item 9 > 0 (ref §3.9).

    ``submission`` is the form instance's token: when a response with it is already stored (the submit
    button pressed again, or two posts at once) that response is returned and nothing new is stored."""
    if submission:
        earlier = InstrumentResponse.objects.filter(patient=patient, submission=submission).first()
        if earlier is not None:
            record_event(actor, "view", patient=patient, obj=earlier, detail="repeated submission")
            return earlier
    if source not in ResponseSource.values:
        raise DomainError(f"Source {source!r} is not one of {', '.join(ResponseSource.values)}.")
    inst, result = _parse_answers(instrument, version, answers, patient.clinic)
    now = clock.now()
    completed_at = completed_at or now
    if completed_at > now:
        raise DomainError("Completed on cannot be in the future.")
    episode = _current_episode(patient, inst.key)
    times = hooks.dosing_times([patient.pk]).get(patient.pk)
    subs = result.subscales
    appended = _appended_outcome(episode, completed_at, result.total)
    try:
        with transaction.atomic():  # a savepoint: a concurrent post of the same form loses the insert
            response = InstrumentResponse.objects.create(
                clinic_id=patient.clinic_id,
                patient=patient,
                episode=episode,
                instrument=inst.key,
                instrument_version=inst.version,
                completed_at=completed_at,
                source=source,
                entered_by=entered_by,
                submission=submission or None,
                total=result.total,
                severity=result.severity or "",
                item9=result.item9,
                item9_positive=result.has_flag(FLAG_ITEM9_POSITIVE),
                item9_urgent=result.has_flag(FLAG_ITEM9_URGENT),
                screen_positive=result.has_flag(FLAG_SCREEN_POSITIVE),
                probable_ptsd=result.has_flag(FLAG_PROBABLE_PTSD),
                provisional_diagnosis=result.provisional_diagnosis or "",
                cluster_b=subs.get("B"),
                cluster_c=subs.get("C"),
                cluster_d=subs.get("D"),
                cluster_e=subs.get("E"),
                sessions_before=sum(1 for t in times if t < completed_at) if times is not None else None,
                **(appended or {}),
            )
    except IntegrityError:
        earlier = InstrumentResponse.objects.filter(patient=patient, submission=submission).first()
        if earlier is None or not submission:
            raise
        record_event(actor, "view", patient=patient, obj=earlier, detail="repeated submission")
        return earlier
    ItemAnswer.objects.bulk_create(
        ItemAnswer(
            response=response,
            item_number=item.number,
            link_id=item.link_id,
            value=value,
            answer_code=next(o.coding.code for o in item.options if o.score == value),
        )
        for item, value in zip(inst.items, result.answers, strict=True)
        if value is not None
    )
    if appended is not None:
        _episode_appended(episode, response)
    else:
        episode_recompute(episode, response)
    add_timeline_event(
        patient,
        kind="measures.response",
        title=f"{inst.key} completed ({response.get_source_display().lower()})",
        category=TimelineCategory.CLINICAL,
        url_name="measures:patient",
        url_kwargs={"patient_id": patient.pk},
        actor=actor,
        ref=response,
        at=completed_at,
    )
    if response.item9_positive:
        alert = SafetyAlert.objects.create(
            clinic_id=patient.clinic_id, patient=patient, response=response, urgent=response.item9_urgent
        )
        add_timeline_event(
            patient,
            kind="measures.safety_alert",
            title="Safety alert raised (PHQ-9 item 9)",
            category=TimelineCategory.CLINICAL,
            url_name="measures:patient",
            url_kwargs={"patient_id": patient.pk},
            actor=actor,
            ref=alert,
        )
        notify_care_team(alert)
    record_event(actor, "create", patient=patient, obj=response, detail=f"{inst.key} source={source}")
    return response


ALERT_SUBJECT = "KAP Clinic: a safety alert needs your review"
ESCALATION_SUBJECT = "KAP Clinic: escalated safety alert needs review now"


def alert_recipients(patient: Patient) -> tuple[list[Any], str]:
    """Who hears of a new alert: the patient's care team (active, with an email address), else the
    clinic's on-call prescriber, else nobody (the dashboard then says so)."""
    team = sorted(
        {m.user for m in patient.care_team.select_related("user") if m.user.is_active and m.user.email},
        key=lambda u: (u.full_name, u.pk),
    )
    if team:
        return team, AlertRoute.CARE_TEAM
    on_call = patient.clinic.on_call_prescriber
    if on_call is not None and on_call.is_active and on_call.email:
        return [on_call], AlertRoute.ON_CALL
    return [], AlertRoute.NOBODY


def notify_care_team(alert: SafetyAlert) -> int:
    """Queue one email per recipient in the alert's transaction (the worker sends them after commit and
    retries), record on the alert who was told, and ask the worker to check for escalation at the
    clinic's escalation time. No clinical detail in the email."""
    recipients, route = alert_recipients(alert.patient)
    url = f"{settings.SITE_URL}{reverse('measures:index')}"
    lead = (
        "A patient on your care team has a new safety alert that needs review today."
        if route == AlertRoute.CARE_TEAM
        else "A patient without a care team has a new safety alert. You are the clinic's on-call "
        "prescriber, so it comes to you; it needs review today."
    )
    body = (
        f"{lead}\n\nSign in to review and acknowledge it: {url}\n\n"
        "This message deliberately contains no clinical details."
    )
    for user in recipients:
        queue(
            kind=MessageKind.SAFETY_ALERT,
            to_email=user.email,
            to_user=user,
            clinic=alert.patient.clinic,
            related=alert,
            subject=ALERT_SUBJECT,
            body=body,
        )
    alert.notified_names = ", ".join(u.full_name or u.email for u in recipients)[:400]
    alert.notified_via = route
    alert.save(update_fields=["notified_names", "notified_via"])
    check_at = alert.raised_at + dt.timedelta(hours=alert.patient.clinic.alert_escalation_hours)
    alert_id = alert.pk
    transaction.on_commit(lambda: enqueue_escalation_check(alert_id, check_at))
    return len(recipients)


def enqueue_escalation_check(alert_id: int, run_after: dt.datetime | None = None) -> None:
    """Ask the worker to look at the alert again at its escalation time (never raises: the
    `escalate_safety_alerts` command is the safety net)."""
    from kapclinic.measures.tasks import check_alert_escalation

    task = check_alert_escalation
    try:
        if run_after is not None and run_after > timezone.now() and task.get_backend().supports_defer:
            task = task.using(run_after=run_after)
        task.enqueue(alert_id)
    except Exception:
        logger.exception("could not queue the escalation check of alert %s", alert_id)


def alert_escalate(alert_id: int, reason: str) -> str:
    """Email the clinic's on-call prescriber about an open alert, once, and record it on the alert.
    Returns what happened."""
    with transaction.atomic():
        alert = (
            SafetyAlert.objects.select_for_update(of=("self",))
            .select_related("clinic", "clinic__on_call_prescriber", "patient")
            .filter(pk=alert_id)
            .first()
        )
        if alert is None:
            return "missing"
        if alert.acknowledged_at is not None:
            return "acknowledged"
        if alert.escalated_at is not None:
            return "already-escalated"
        on_call = alert.clinic.on_call_prescriber
        if on_call is None or not on_call.is_active or not on_call.email:
            logger.warning("alert %s is due to escalate but its clinic has no on-call prescriber", alert.pk)
            return "no-on-call"
        hours = alert.clinic.alert_escalation_hours
        why = (
            "The email to the care team about it could not be delivered."
            if reason == EscalationReason.UNDELIVERED
            else f"Nobody acknowledged it within {hours} hour{'s' if hours != 1 else ''}."
        )
        url = f"{settings.SITE_URL}{reverse('measures:index')}"
        queue(
            kind=MessageKind.SAFETY_ESCALATION,
            to_email=on_call.email,
            to_user=on_call,
            clinic=alert.clinic,
            related=alert,
            subject=ESCALATION_SUBJECT,
            body=(
                "A safety alert raised at "
                f"{timezone.localtime(alert.raised_at):%Y-%m-%d %H:%M} is still open. {why}\n"
                "You are the clinic's on-call prescriber, so it is escalated to you.\n\n"
                f"Sign in to review and acknowledge it: {url}\n\n"
                "This message deliberately contains no clinical details."
            ),
        )
        alert.escalated_to = on_call
        alert.escalated_at = clock.now()
        alert.escalation_reason = reason
        alert.save(update_fields=["escalated_to", "escalated_at", "escalation_reason"])
        add_timeline_event(
            alert.patient,
            kind="measures.safety_alert_escalated",
            title="Safety alert escalated to the on-call prescriber",
            category=TimelineCategory.CLINICAL,
            url_name="measures:patient",
            url_kwargs={"patient_id": alert.patient_id},
            actor=Actor.system(alert.clinic, "escalation"),
            ref=alert,
        )
        record_event(
            Actor.system(alert.clinic, "escalation"),
            "update",
            patient=alert.patient,
            obj=alert,
            detail=f"escalated reason={reason}",
        )
        return "escalated"


def alert_notification_failed(message: Any) -> None:
    """messaging's final-failure handler for safety-alert emails: escalate at once."""
    if message.related_type == SafetyAlert._meta.label_lower and message.related_id:
        alert_escalate(message.related_id, EscalationReason.UNDELIVERED)


def alert_escalation_due(alert_id: int, now: dt.datetime | None = None) -> str | None:
    """Why the alert should escalate now, or None."""
    from kapclinic.messaging.models import MessageStatus, OutboundMessage

    now = now or clock.now()
    alert = SafetyAlert.objects.select_related("clinic").filter(pk=alert_id).first()
    if alert is None or alert.acknowledged_at is not None or alert.escalated_at is not None:
        return None
    if OutboundMessage.objects.filter(
        kind=MessageKind.SAFETY_ALERT,
        related_type=SafetyAlert._meta.label_lower,
        related_id=alert.pk,
        status=MessageStatus.FAILED,
    ).exists():
        return EscalationReason.UNDELIVERED
    if alert.raised_at + dt.timedelta(hours=alert.clinic.alert_escalation_hours) <= now:
        return EscalationReason.UNACKNOWLEDGED
    return None


def alert_check_escalation(alert_id: int) -> str:
    reason = alert_escalation_due(alert_id)
    return "not-due" if reason is None else alert_escalate(alert_id, reason)


def escalate_due_alerts() -> dict[str, int]:
    """Every open, not yet escalated alert whose escalation is due (the `escalate_safety_alerts`
    command, run from cron, and a safety net for the worker's own per-alert check)."""
    from collections import Counter

    pending = SafetyAlert.objects.filter(acknowledged_at__isnull=True, escalated_at__isnull=True)
    # Alerts of a clinic without an on-call prescriber cannot escalate: counted, not checked one by one.
    outcome = Counter(alert_check_escalation(pk) for pk in pending.filter(
        clinic__on_call_prescriber__isnull=False
    ).values_list("pk", flat=True))  # fmt: skip
    stranded = pending.filter(clinic__on_call_prescriber__isnull=True).count()
    if stranded:
        outcome["no-on-call"] += stranded
    return dict(outcome)


# ---------------------------------------------------------------- emailed single-use links


@transaction.atomic
def link_send(actor: Actor, patient: Patient, *, instrument: str) -> tuple[MeasureLink, str]:
    """Create a single-use link and email it to the patient. Returns (link, raw token)."""
    try:
        inst = get_instrument(instrument)
    except UnknownInstrumentError as exc:
        raise DomainError(str(exc)) from None
    if not patient.email:
        raise DomainError("Email: the patient has no email address on file, so no link can be sent.")
    token = secrets.token_urlsafe(32)
    hours = link_hours(patient.clinic)
    link = MeasureLink.objects.create(
        clinic_id=patient.clinic_id,
        patient=patient,
        instrument=inst.key,
        token_hash=token_hash(token),
        expires_at=clock.now() + dt.timedelta(hours=hours),
        created_by=actor.user,
    )
    url = f"{settings.SITE_URL}{reverse('measures:link', kwargs={'token': token})}"
    body = (
        f"{patient.clinic.name} asks you to complete a short check-in questionnaire.\n\n"
        f"Open this link to answer: {url}\n\n"
        f"The link works once and expires in {hours} hours. If you are in crisis, call or text 988 "
        f"(Suicide & Crisis Lifeline) or call {patient.clinic.emergency_number}."
    )
    record_event(actor, "create", patient=patient, obj=link, detail=f"{inst.key} link")
    queue(
        kind=MessageKind.MEASURE_LINK,
        to_email=patient.email,
        clinic=patient.clinic,
        related=link,
        subject="Your check-in questionnaire",
        body=body,
    )
    from kapclinic.messaging.services import queue_sms
    from kapclinic.messaging.sms import measure_link_text

    # A text too when the patient chose texts (issue 17): the link only, no instrument name.
    queue_sms(
        kind=MessageKind.MEASURE_LINK,
        patient=patient,
        body=measure_link_text(patient.clinic.name, url),
        related=link,
    )
    return link, token


def link_resolve(token: str, *, for_update: bool = False) -> MeasureLink:
    qs = MeasureLink.objects.select_related("patient", "patient__clinic", "clinic")
    if for_update:
        qs = qs.select_for_update()
    link = qs.filter(token_hash=token_hash(token)).first()
    if link is None:
        raise LinkError(
            "unknown", "This link is not valid. Please use the most recent link your clinic sent you."
        )
    if link.used_at is not None:
        raise LinkError("used", "This link has already been used: your answers were received, thank you.")
    if clock.now() >= link.expires_at:
        raise LinkError(
            "expired", "This link has expired. Please contact your clinic and they will send you a new one."
        )
    return link


@transaction.atomic
def link_submit(token: str, answers: Sequence[int | None], *, ip: str | None = None) -> InstrumentResponse:
    link = link_resolve(token, for_update=True)
    actor = Actor(user=None, clinic=link.clinic, role="patient_link", request_id="measure-link", ip=ip)
    claimed = MeasureLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=clock.now())
    if claimed != 1:
        raise LinkError("used", "This link has already been used: your answers were received, thank you.")
    response = response_submit(
        actor,
        link.patient,
        instrument=link.instrument,
        version=None,
        answers=answers,
        source=ResponseSource.EMAIL_LINK,
        link=link,
    )
    MeasureLink.objects.filter(pk=link.pk).update(response=response)
    return response


# ---------------------------------------------------------------- safety alerts and plans


@transaction.atomic
def alert_acknowledge(actor: Actor, alert: SafetyAlert, *, action: str, note: str) -> SafetyAlert:
    if action not in AlertAction.values:
        raise DomainError("Action: choose the action you took from the list.")
    note = note.strip()
    if action == AlertAction.OTHER and not note:
        raise DomainError("Note: describe the action you took when you choose “Other”.")
    now = clock.now()
    updated = SafetyAlert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=now, acknowledged_by=actor.user, action=action, action_note=note
    )
    if updated != 1:
        raise DomainError(
            "This alert was already acknowledged by a colleague; the page now shows their action."
        )
    alert.refresh_from_db()
    add_timeline_event(
        alert.patient,
        kind="measures.alert_acknowledged",
        title=f"Safety alert acknowledged: {alert.get_action_display()}",
        category=TimelineCategory.CLINICAL,
        actor=actor,
        ref=alert,
        url_name="measures:patient",
        url_kwargs={"patient_id": alert.patient_id},
    )
    record_event(actor, "update", patient=alert.patient, obj=alert, detail=f"acknowledged action={action}")
    return alert


@transaction.atomic
def safety_plan_save(
    actor: Actor, patient: Patient, *, data: dict[str, str], expected_version: int | None
) -> SafetyPlan:
    plan = SafetyPlan.objects.filter(patient=patient).first()
    fields = list(SafetyPlan.SECTIONS)
    if plan is None:
        plan = SafetyPlan.objects.create(
            patient=patient,
            updated_by=actor.user,
            updated_at=clock.now(),
            **{f: data.get(f, "") for f in fields},
        )
        action = "create"
    else:
        for f in fields:
            setattr(plan, f, data.get(f, ""))
        plan.updated_by = actor.user
        plan.updated_at = clock.now()
        save_versioned(plan, expected_version or 0, [*fields, "updated_by", "updated_at"])
        action = "update"
    add_timeline_event(
        patient,
        kind="measures.safety_plan",
        title="Safety plan updated",
        category=TimelineCategory.CLINICAL,
        actor=actor,
        ref=plan,
        url_name="measures:safety_plan",
        url_kwargs={"patient_id": patient.pk},
    )
    record_event(actor, action, patient=patient, obj=plan, detail="safety plan")
    return plan


@transaction.atomic
def schedule_save(actor: Actor, patient: Patient, *, instrument: str, **fields: Any) -> MeasurementSchedule:
    schedule, _ = MeasurementSchedule.objects.update_or_create(
        patient=patient, instrument=instrument, defaults=fields
    )
    record_event(actor, "update", patient=patient, obj=schedule, detail=f"{instrument} schedule")
    return schedule


@transaction.atomic
def episode_restart(actor: Actor, patient: Patient, *, instrument: str) -> Episode:
    """Close the open episode; the next response becomes the new baseline."""
    now = clock.now()
    Episode.objects.filter(patient=patient, instrument=instrument, ended_at__isnull=True).update(ended_at=now)
    episode = _current_episode(patient, instrument)
    record_event(actor, "create", patient=patient, obj=episode, detail=f"{instrument} new episode")
    return episode


# ---------------------------------------------------------------- clinic settings (settings page)

#: field -> (label, cited default, source, (min, max) or None). Defaults and sources as in MeasureSettings.
SETTING_INFO: dict[str, tuple[str, str, str, tuple[int, int] | None]] = {
    "alert_overdue_hours": (
        "Open safety alerts are overdue after (hours)",
        "24",
        "design recommendation: surfaced to a clinician the same day (ref §3.9)",
        (1, 168),
    ),
    "item9_urgent_min": (
        "PHQ-9 item 9 is urgent at or above",
        "2",
        "design recommendation: escalate item 9 >= 2 for urgent review (ref §3.9)",
        (1, 3),
    ),
    "pcl5_probable_ptsd_min": (
        "PCL-5 probable PTSD cut-off (total at or above)",
        "33",
        "[S56][S59b] ref §0, §4.3 (published cut-offs 31-33)",
        (31, 33),
    ),
    "link_hours": (
        "Emailed questionnaire links expire after (hours)",
        str(getattr(settings, "MEASURE_LINK_HOURS", 72)),
        "operational setting (issue #3 default 72 h; MEASURE_LINK_HOURS)",
        (1, 720),
    ),
    "pre_session_phq9_window": (
        "PHQ-9 that counts for a dosing session",
        "since_previous_session",
        "operational setting; PHQ-9 before each dosing session (ref §6.1, §6.3)",
        None,
    ),
    "pre_session_phq9_max_hours": (
        "…and completed at most this many hours before the gate",
        "48",
        "operational setting; the same 2-day window as the 'before dosing' due list",
        (1, 168),
    ),
    "extra_crisis_resources": (
        "Extra crisis resources shown to patients (one per line)",
        "",
        "clinic's own text (988 and the emergency number are always shown; ref §3.9)",
        None,
    ),
}


def measure_settings_apply(
    clinic: Any, values: dict[str, Any], *, expected_version: int, user: Any
) -> list[tuple[str, str, str]]:
    """Write the clinic's measure settings if nobody saved since ``expected_version``. No audit here:
    the caller (the clinic-settings service) records the change and audits it. Returns
    [(field, old, new)] as text, [] when nothing changed. Raises ConflictError on a stale version."""
    from kapclinic.core.concurrency import ConflictError

    row = MeasureSettings.objects.select_for_update().filter(clinic_id=clinic.pk).first()
    if row is None:
        row = MeasureSettings.objects.create(clinic_id=clinic.pk)
    if row.version != expected_version:
        raise ConflictError()
    changes: list[tuple[str, str, str]] = []
    for name, value in values.items():
        if name not in SETTING_INFO:
            raise ValueError(name)
        old = getattr(row, name)
        if (old if old is not None else "") != (value if value is not None else ""):
            changes.append((name, "" if old is None else str(old), "" if value is None else str(value)))
            setattr(row, name, value)
    if changes:
        row.updated_at = clock.now()
        row.updated_by = user
        updated = MeasureSettings.objects.filter(pk=row.pk, version=expected_version).update(
            **{n: getattr(row, n) for n, _o, _n in changes},
            updated_at=row.updated_at,
            updated_by=user,
            version=expected_version + 1,
        )
        if updated != 1:
            raise ConflictError()
        request_cache.forget()  # the rest of this request reads the new values
    return changes
