"""Pure: propose the appointment series for a plan (no Django, no database).

Issue 4: preparation, then dosing sessions each followed by an integration session, then a
reassessment at the end of induction. Session count and weekly frequency come from the protocol
(ref §1.3, §1.4); integration follows each dosing session (ref §6.2 [S35][S36a]). Weeks are
suggestions for booking, not clinical rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Proposal:
    sequence: int
    kind: str  # preparation | dosing | integration | reassessment
    week: int
    label: str


def propose_series(
    dosing_sessions: int, sessions_per_week: Decimal, preparation_sessions: int = 1
) -> list[Proposal]:
    if dosing_sessions < 1:
        raise ValueError("The number of dosing sessions must be at least 1.")
    if sessions_per_week <= 0:
        raise ValueError("Sessions per week must be greater than 0.")
    if preparation_sessions < 0:
        raise ValueError("The number of preparation sessions cannot be negative.")
    out: list[Proposal] = []
    seq = 1
    for i in range(preparation_sessions):
        out.append(Proposal(seq, "preparation", 0, f"Preparation session {i + 1}"))
        seq += 1
    last_week = 1
    for i in range(dosing_sessions):
        week = 1 + math.floor(Decimal(i) / sessions_per_week)
        last_week = week
        out.append(Proposal(seq, "dosing", week, f"Dosing session {i + 1} of {dosing_sessions}"))
        out.append(
            Proposal(seq + 1, "integration", week, f"Integration session after dosing session {i + 1}")
        )
        seq += 2
    out.append(
        Proposal(seq, "reassessment", last_week + 1, "Reassessment at the end of the induction series")
    )
    return out
