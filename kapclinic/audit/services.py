from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, models, transaction

from kapclinic.audit.models import GENESIS, AuditAction, AuditChainHead, AuditEvent
from kapclinic.core import clock
from kapclinic.core.actor import Actor

if TYPE_CHECKING:
    from kapclinic.patients.models import Patient


def _head_for_update(chain: int) -> AuditChainHead:
    try:
        return AuditChainHead.objects.select_for_update().get(chain=chain)
    except AuditChainHead.DoesNotExist:
        try:
            with transaction.atomic():
                AuditChainHead.objects.create(chain=chain, seq=0, hash=GENESIS)
        except IntegrityError:
            pass  # created concurrently
        return AuditChainHead.objects.select_for_update().get(chain=chain)


def record_event(
    actor: Actor,
    action: str,
    *,
    patient: Patient | None = None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str | int = "",
    detail: str = "",
    clinic: Any = None,
) -> AuditEvent:
    """Append one audit event. Call inside the transaction of the change it records.

    `detail` is for codes and counts only, never patient data.
    """
    if action not in AuditAction.values:
        raise ValueError(f"Unknown audit action {action!r}")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    clinic = clinic or (patient.clinic if patient is not None else actor.clinic)
    chain = clinic.pk if clinic is not None else 0
    with transaction.atomic():
        head = _head_for_update(chain)
        event = AuditEvent(
            chain=chain,
            seq=head.seq + 1,
            at=clock.now().astimezone(dt.UTC),
            actor=actor.user,
            actor_role=actor.role or "",
            clinic=clinic,
            patient=patient,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            request_id=actor.request_id[:64],
            ip=actor.ip or "",
            detail=detail[:200],
            prev_hash=head.hash,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
        AuditChainHead.objects.filter(chain=chain).update(seq=event.seq, hash=event.hash)
    return event


def verify_chains() -> list[str]:
    """Walk every chain; return a sentence for each chain's first broken link (empty list = intact)."""
    problems: list[str] = []
    heads = {h.chain: h for h in AuditChainHead.objects.all()}
    chains = set(heads) | set(AuditEvent.objects.values_list("chain", flat=True).distinct())
    for chain in sorted(chains):
        prev_hash = GENESIS
        expected_seq = 1
        broken = False
        for event in AuditEvent.objects.filter(chain=chain).order_by("seq").iterator(chunk_size=2000):
            if event.seq != expected_seq:
                problems.append(
                    f"Chain {chain}: event #{expected_seq} is missing "
                    f"(next stored event is #{event.seq}, id {event.pk})."
                )
                broken = True
                break
            if event.prev_hash != prev_hash:
                problems.append(
                    f"Chain {chain}: event #{event.seq} (id {event.pk}) does not link to the event before it."
                )
                broken = True
                break
            if event.compute_hash() != event.hash:
                problems.append(
                    f"Chain {chain}: event #{event.seq} (id {event.pk}) was altered after it was written."
                )
                broken = True
                break
            prev_hash = event.hash
            expected_seq += 1
        if broken:
            continue
        head = heads.get(chain)
        if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
            problems.append(
                f"Chain {chain}: the newest event(s) after #{expected_seq - 1} were removed "
                f"(the chain head records #{head.seq})."
            )
    return problems
