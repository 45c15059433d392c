"""The demo shows issue 17: the demo patient's answered and waiting messages, a staff-only thread, video
links from a Jitsi pattern, consent to texts."""

from __future__ import annotations

import pytest

from kapclinic.conversations.models import Message, Thread
from kapclinic.messaging.models import SmsPreference
from kapclinic.scheduling.models import TelehealthSettings
from tests.demo.conftest import Seeded

pytestmark = [pytest.mark.django_db, pytest.mark.xdist_group("demo")]


def test_demo_messages_video_and_texts(demo: Seeded) -> None:
    assert (Thread.objects.count(), Message.objects.count()) == (3, 4)
    assert Thread.objects.filter(awaiting_since__isnull=False).count() == 1
    assert TelehealthSettings.objects.get().jitsi_pattern.startswith("https://")
    assert SmsPreference.objects.get().may_text
