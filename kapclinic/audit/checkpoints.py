"""Signed checkpoints of the audit chains, published outside the database.

A checkpoint records, for one chain, the newest sequence number and its hash at a moment, signed with an
HMAC under the audit key (the signing key of AUDIT_CHAIN_KEY, domain-separated from the chain hashes, with
its key id). `manage.py audit_checkpoint` appends one JSON line per chain to AUDIT_CHECKPOINT_FILE and sends
the same lines to AUDIT_CHECKPOINT_EMAIL and/or AUDIT_CHECKPOINT_WEBHOOK; copies that left the host cannot
be taken back by someone who later gains access to the database.

`verify_checkpoints` proves against the database that, for every checkpoint, the event at that sequence
still exists with that hash: removing the newest events (and fixing the chain head), rewriting events,
or removing a whole clinic's chain is detected, which a hash chain alone cannot show.

Checkpoints carry no patient data: chain (clinic) ids, sequence numbers, hashes and times.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import os
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from kapclinic.audit import keys
from kapclinic.audit.models import AuditChainHead, AuditEvent
from kapclinic.core import clock

logger = logging.getLogger(__name__)

DOMAIN = "kapclinic-audit-checkpoint:v1:"
FIELDS = ("chain", "seq", "head", "at", "kid", "sig")


def _signed_text(chain: int, seq: int, head: str, at: str) -> str:
    return DOMAIN + json.dumps([chain, seq, head, at], separators=(",", ":"))


def sign(chain: int, seq: int, head: str, at: str) -> dict[str, Any]:
    kid, secret = keys.signing_key()
    return {
        "chain": chain,
        "seq": seq,
        "head": head,
        "at": at,
        "kid": kid,
        "sig": keys.mac(secret, _signed_text(chain, seq, head, at)),
    }


def current_checkpoints() -> list[dict[str, Any]]:
    """One signed checkpoint per chain that holds at least one event, from the chain heads."""
    at = clock.now().astimezone(dt.UTC).isoformat(timespec="seconds")
    return [
        sign(head.chain, head.seq, head.hash, at)
        for head in AuditChainHead.objects.filter(seq__gt=0).order_by("chain")
    ]


@dataclass
class Publication:
    checkpoints: list[dict[str, Any]]
    delivered: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _post(url: str, body: bytes) -> None:
    if not url.startswith(("https://", "http://")):
        raise ValueError("the address must start with https://")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
        status = response.status
    if not 200 <= status < 300:
        raise OSError(f"HTTP status {status}")


def publish() -> Publication:
    """Write the current checkpoints to every configured destination; failures are sentences."""
    result = Publication(checkpoints=current_checkpoints())
    if not result.checkpoints:
        return result
    lines = "".join(json.dumps(c, separators=(",", ":")) + "\n" for c in result.checkpoints)
    path = getattr(settings, "AUDIT_CHECKPOINT_FILE", "")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            result.delivered.append(f"file {path}")
        except OSError as exc:
            result.failures.append(f"The checkpoint file {path} could not be written: {exc.strerror or exc}.")
    recipients = list(getattr(settings, "AUDIT_CHECKPOINT_EMAIL", []) or [])
    if recipients:
        try:
            send_mail(
                f"KAP Clinic audit checkpoint {result.checkpoints[0]['at']}",
                "Signed audit checkpoints (one JSON line per chain). Keep this message: "
                "`manage.py audit_verify --checkpoints FILE` proves the audit trail against these lines.\n\n"
                + lines,
                settings.DEFAULT_FROM_EMAIL,
                recipients,
            )
            result.delivered.append("email")
        except Exception as exc:  # SMTP errors have many types
            result.failures.append(f"The checkpoint email could not be sent: {exc}.")
    url = getattr(settings, "AUDIT_CHECKPOINT_WEBHOOK", "")
    if url:
        try:
            _post(url, json.dumps({"checkpoints": result.checkpoints}).encode())
            result.delivered.append("webhook")
        except Exception as exc:  # URLError, HTTPError, timeouts
            result.failures.append(f"The checkpoint webhook could not be reached: {exc}.")
    return result


@dataclass(frozen=True)
class Checkpoint:
    chain: int
    seq: int
    head: str
    at: str
    line: int


def parse(lines: Iterable[str], source: str) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints whose signature verifies, and a sentence for every line that does not."""
    found: list[Checkpoint] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or set(data) != set(FIELDS):
                raise ValueError
            chain, seq, head, at, kid, sig = (data[f] for f in FIELDS)
            if not (isinstance(chain, int) and isinstance(seq, int) and seq > 0):
                raise ValueError
            if not all(isinstance(v, str) for v in (head, at, kid, sig)):
                raise ValueError
        except ValueError:
            problems.append(f"Line {number} of {source} is not an audit checkpoint.")
            continue
        secret = keys.key_by_id(kid)
        if secret is None:
            problems.append(
                f"Line {number} of {source} is signed with key id {kid!r}, which is not in AUDIT_CHAIN_KEY: "
                "add that key (after the current one) to check it."
            )
            continue
        if not hmac.compare_digest(keys.mac(secret, _signed_text(chain, seq, head, at)), sig):
            problems.append(
                f"Line {number} of {source} has a signature that does not match: the line was edited, "
                "or it was not written with this clinic's audit key."
            )
            continue
        found.append(Checkpoint(chain, seq, head, at, number))
    if not found and not problems:
        problems.append(f"{source} holds no checkpoints, so nothing could be proved against it.")
    return found, problems


def verify_against(checkpoints: list[Checkpoint]) -> list[str]:
    """A sentence per chain for the earliest checkpoint the database no longer matches."""
    by_chain: dict[int, dict[tuple[int, str], Checkpoint]] = {}
    for cp in checkpoints:
        by_chain.setdefault(cp.chain, {}).setdefault((cp.seq, cp.head), cp)
    problems: list[str] = []
    for chain in sorted(by_chain):
        wanted = by_chain[chain]
        seqs = sorted({seq for seq, _ in wanted})
        stored: dict[int, str] = {}
        for start in range(0, len(seqs), 500):
            batch = seqs[start : start + 500]
            stored.update(AuditEvent.objects.filter(chain=chain, seq__in=batch).values_list("seq", "hash"))
        failing = sorted(
            (cp for (seq, head), cp in wanted.items() if stored.get(seq) != head), key=lambda c: c.seq
        )
        if not failing:
            continue
        first, more = failing[0], len(failing) - 1
        tail = f" ({more} later checkpoint(s) of this chain fail too)" if more else ""
        if not stored and not AuditEvent.objects.filter(chain=chain).exists():
            newest = max(wanted.values(), key=lambda c: c.seq)
            problems.append(
                f"Chain {chain} has no events left, although the checkpoint of {newest.at} (line "
                f"{newest.line}) recorded event #{newest.seq}: the whole chain was removed."
            )
        elif first.seq not in stored:
            problems.append(
                f"Chain {chain}: event #{first.seq}, recorded by the checkpoint of {first.at} (line "
                f"{first.line}), is missing: events were removed{tail}."
            )
        else:
            problems.append(
                f"Chain {chain}: event #{first.seq} does not match the checkpoint of {first.at} (line "
                f"{first.line}): it was rewritten after that checkpoint{tail}."
            )
    return problems
