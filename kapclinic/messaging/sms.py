"""Text messages (issue 17): one small sender interface, a console backend for development and the demo,
and one real provider (Twilio's Messages API) configured by environment variables:

| variable            | meaning                                                                  |
|---------------------|--------------------------------------------------------------------------|
| SMS_BACKEND         | `console` (default: printed to the worker's output) or `twilio`          |
| TWILIO_ACCOUNT_SID  | the account SID (twilio backend)                                         |
| TWILIO_AUTH_TOKEN   | the auth token: sends, and checks the signature of the STOP webhook      |
| TWILIO_FROM_NUMBER  | the clinic's sending number, E.164                                       |
| SMS_API_BASE        | the API's base address (default https://api.twilio.com; tests point it at |
|                     | a fake server on loopback, the only place plain http is accepted)        |

Texts go through the outbound queue (messaging.services.queue_sms) like every email: background
worker, retries with back-off, the undelivered list on /messages/. A text never carries clinical
detail (no appointment kind, no instrument, no message text): the builders below are the only texts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

import phonenumbers
from django.conf import settings

logger = logging.getLogger(__name__)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_OUT_LINE = "Reply STOP to stop texts."


class SmsError(Exception):
    """A provider refused or could not be reached (the class name is recorded, never the text)."""


class SmsSender(Protocol):
    def send(self, to: str, body: str) -> None: ...


class ConsoleSender:
    """Development and demo: the text is printed to the worker's standard output. `outbox` keeps what
    was sent in this process (tests read it)."""

    outbox: list[tuple[str, str]] = []  # shared on purpose, like Django's locmem mail

    def send(self, to: str, body: str) -> None:
        ConsoleSender.outbox.append((to, body))
        sys.stdout.write(f"SMS to {to}:\n{body}\n\n")


class TwilioSender:
    """Twilio Programmable Messaging: POST /2010-04-01/Accounts/{sid}/Messages.json (form: To, From,
    Body), HTTP basic auth with the account SID and auth token."""

    def __init__(self, sid: str, token: str, from_number: str, base: str) -> None:
        self.sid, self.token, self.from_number, self.base = sid, token, from_number, base.rstrip("/")

    def send(self, to: str, body: str) -> None:
        url = f"{self.base}/2010-04-01/Accounts/{urllib.parse.quote(self.sid)}/Messages.json"
        data = urllib.parse.urlencode({"To": to, "From": self.from_number, "Body": body}).encode()
        auth = base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310  (the scheme is checked in config_problems)
            url, data=data, method="POST", headers={"Authorization": f"Basic {auth}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
                payload = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise SmsError(f"provider answered {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SmsError("provider unreachable") from exc
        if payload.get("status") in ("failed", "undelivered"):
            raise SmsError("provider refused the message")


def config_problems(backend: str, sid: str, token: str, from_number: str, base: str) -> list[str]:
    """Why the SMS configuration cannot work (settings refuse to start with any)."""
    if backend == "console":
        return []
    if backend != "twilio":
        return ["SMS_BACKEND must be 'console' or 'twilio'."]
    problems = []
    if not (sid and token and from_number):
        problems.append(
            "SMS_BACKEND=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER."
        )
    if from_number and e164(from_number) is None:
        problems.append("TWILIO_FROM_NUMBER must be a valid number in E.164 form, e.g. +12025550142.")
    parts = urllib.parse.urlsplit(base)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        problems.append("SMS_API_BASE must be an https:// address.")
    return problems


def get_sender() -> SmsSender:
    backend = getattr(settings, "SMS_BACKEND", "console")
    if backend == "twilio":
        return TwilioSender(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            settings.TWILIO_FROM_NUMBER,
            getattr(settings, "SMS_API_BASE", "https://api.twilio.com"),
        )
    return ConsoleSender()


def e164(raw: str) -> str | None:
    """The number in E.164 form, or None when it is not a valid number written with its country code."""
    text = (raw or "").strip()
    if not text.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's request signature: HMAC-SHA1 of the full URL followed by each POST parameter name and
    value in name order, base64-encoded (header X-Twilio-Signature)."""
    payload = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_stop(body: str) -> bool:
    return body.strip().upper().rstrip(".!") in STOP_WORDS


# --- the only texts the application sends (no clinical detail) -----------------------------------


def reminder_text(clinic_name: str, when: str, portal_url: str) -> str:
    return f"{clinic_name}: reminder of your appointment on {when}. Details: {portal_url} {OPT_OUT_LINE}"


def measure_link_text(clinic_name: str, url: str) -> str:
    return f"{clinic_name} asks you to complete a short check-in: {url} {OPT_OUT_LINE}"
