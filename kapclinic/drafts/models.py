from __future__ import annotations

from django.conf import settings
from django.db import models


class Draft(models.Model):
    """The values typed into a long form and not yet saved (issue #18), kept for their author only.

    Kept server-side, never in browser storage: a shared clinic tablet must not keep patient data after
    sign-out (docs/architecture.md "Drafts"). One row per author, form and object (object_id 0 for a
    form about no particular object); saving the form deletes it. `data` is never logged or audited in
    full: audit events name the form only."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drafts")
    clinic = models.ForeignKey("accounts.Clinic", on_delete=models.CASCADE, null=True, related_name="+")
    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, null=True, related_name="+")
    key = models.CharField(max_length=64)
    object_id = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key", "object_id"], name="draft_one_per_author_form_object"
            )
        ]

    def __str__(self) -> str:
        return f"draft {self.key}/{self.object_id}"
