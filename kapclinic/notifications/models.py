"""Which notifications a person has read. The notifications themselves are not stored: they are the
current state of their sources (an open safety alert, an unread message thread, ...), read when the bell
asks (kapclinic/notifications/sources.py), so nothing can fall out of step with the thing it points to."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from kapclinic.core import clock


class NotificationRead(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    #: The notification's key, e.g. "alert:12" or "thread:5:1764999999" (a new message is a new key).
    key = models.CharField(max_length=80)
    read_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "key"], name="notification_read_unique")
        ]
