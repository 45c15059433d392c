"""The demo shows issue 17: the demo patient's answered and waiting messages, a staff-only thread, video
links from a Jitsi pattern, consent to texts. Idempotent."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from kapclinic.conversations.models import Message, Thread
from kapclinic.messaging.models import SmsPreference
from kapclinic.scheduling.models import TelehealthSettings

# Seeds the whole demo (a minute or more): SQLite only; on PostgreSQL the calendar's demo test
# (scheduling, unmarked) seeds it (bin/test-postgres).
pytestmark = [pytest.mark.django_db, pytest.mark.seeds_demo]


def test_demo_messages_video_and_texts() -> None:
    call_command("seed_demo", "--quiet-logins")
    counts = (Thread.objects.count(), Message.objects.count())
    call_command("seed_demo", "--quiet-logins")
    assert (Thread.objects.count(), Message.objects.count()) == counts == (3, 4)
    assert Thread.objects.filter(awaiting_since__isnull=False).count() == 1
    assert TelehealthSettings.objects.get().jitsi_pattern.startswith("https://")
    assert SmsPreference.objects.get().may_text
