"""An email backend for tests: the mail server is down (every send raises, as smtplib does)."""

from __future__ import annotations

import smtplib
from collections.abc import Sequence
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend

DOWN = "kapclinic.testing.mail.MailServerDown"


class MailServerDown(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[Any]) -> int:
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
