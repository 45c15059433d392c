from __future__ import annotations

from typing import Any

from kapclinic.drafts.models import Draft


def draft_for(user: Any, key: str, object_id: int) -> Draft | None:
    """The author's own draft of this form for this object: never anyone else's."""
    return Draft.objects.filter(user=user, key=key, object_id=object_id).first()
