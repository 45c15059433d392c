"""Optional Sentry reporting: started only with SENTRY_DSN, never sends patient or user data.

No test contacts a network: the settings tests only start the SDK (it connects when it has an event to
send), and the end-to-end test hands the SDK a transport that keeps envelopes in memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kapclinic.core.error_reporting import SAFE_HEADERS, init_error_reporting, scrub_event
from kapclinic.core.logging import set_request_id

MARKER = "Jane Example"
ROOT = Path(__file__).resolve().parents[3]
FAKE_DSN = "https://publickey@127.0.0.1:9/1"


def _event() -> dict[str, Any]:
    """An event shaped like the Django integration's, with the marker everywhere it could hide."""
    return {
        "level": "error",
        "transaction": "/patients/<int:pk>/",
        "request": {
            "method": "POST",
            "url": f"https://clinic.example.org/patients/12/?q={MARKER}",
            "query_string": f"q={MARKER}",
            "data": {"name": MARKER},
            "cookies": {"sessionid": "secret-session"},
            "env": {"REMOTE_ADDR": "203.0.113.9"},
            "headers": {
                "Cookie": "sessionid=secret-session",
                "Authorization": "Bearer secret",
                "Referer": f"https://clinic.example.org/patients/?q={MARKER}",
                "User-Agent": "Mozilla/5.0",
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Request-ID": "abc123",
            },
        },
        "user": {"id": "7", "email": "jane@example.org", "ip_address": "203.0.113.9"},
        "extra": {"patient": MARKER},
        "exception": {
            "values": [
                {
                    "type": "IntegrityError",
                    "module": "django.db.utils",
                    "value": f"duplicate key ({MARKER})",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "kapclinic/patients/services.py",
                                "function": "create_patient",
                                "lineno": 40,
                                "context_line": "    patient.save()",
                                "vars": {"name": MARKER},
                            }
                        ]
                    },
                }
            ]
        },
        "threads": {"values": [{"stacktrace": {"frames": [{"function": "run", "vars": {"x": MARKER}}]}}]},
        "logentry": {
            "message": "could not save %s",
            "params": [MARKER],
            "formatted": f"could not save {MARKER}",
        },
        "breadcrumbs": {
            "values": [
                {
                    "type": "default",
                    "category": "query",
                    "level": "info",
                    "timestamp": "2026-03-02T14:00:00Z",
                    "message": f"SELECT * FROM patients WHERE name = '{MARKER}'",
                    "data": {"db.params": [MARKER]},
                }
            ]
        },
    }


def test_scrubber_drops_request_data_cookies_user_messages_and_breadcrumb_text() -> None:
    set_request_id("req42")
    try:
        event = scrub_event(_event(), {})
    finally:
        set_request_id("-")
    dumped = json.dumps(event)
    assert MARKER not in dumped
    assert "secret" not in dumped and "203.0.113.9" not in dumped and "jane@" not in dumped
    assert event["request"] == {
        "method": "POST",
        "headers": {"Content-Type": "application/x-www-form-urlencoded", "X-Request-ID": "abc123"},
    }
    assert "user" not in event and "extra" not in event
    [exc] = event["exception"]["values"]
    assert exc["type"] == "IntegrityError" and exc["module"] == "django.db.utils"
    assert exc["value"] == "[Filtered]"
    [frame] = exc["stacktrace"]["frames"]
    assert frame == {
        "filename": "kapclinic/patients/services.py",
        "function": "create_patient",
        "lineno": 40,
        "context_line": "    patient.save()",
    }
    assert event["logentry"] == {"message": "could not save %s", "params": []}
    assert event["breadcrumbs"]["values"] == [
        {"type": "default", "category": "query", "level": "info", "timestamp": "2026-03-02T14:00:00Z"}
    ]
    assert event["tags"] == {"request_id": "req42"}
    assert event["transaction"] == "/patients/<int:pk>/"


def test_safe_headers_are_not_identifying() -> None:
    assert not SAFE_HEADERS & {"cookie", "authorization", "referer", "user-agent", "x-forwarded-for"}


def test_init_only_when_a_dsn_is_set_and_with_pii_off() -> None:
    calls: list[dict[str, Any]] = []
    assert init_error_reporting("", "production", init=lambda **kw: calls.append(kw)) is False
    assert calls == []
    assert init_error_reporting(FAKE_DSN, "production", init=lambda **kw: calls.append(kw)) is True
    [options] = calls
    assert options["dsn"] == FAKE_DSN and options["environment"] == "production"
    assert options["send_default_pii"] is False
    assert options["include_local_variables"] is False
    assert options["max_request_body_size"] == "never"
    assert options["before_send"] is scrub_event
    assert not options["traces_sample_rate"]


def _settings_run(extra_env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    env.update({"KAP_ENV": "test", "DATABASE_URL": "sqlite:///:memory:", **extra_env})
    prefix = "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='kapclinic.settings';django.setup();"
    return subprocess.run(
        [sys.executable, "-c", prefix + code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_settings_start_sentry_only_with_sentry_dsn() -> None:
    code = (
        "import sentry_sdk;from django.conf import settings as s;c=sentry_sdk.get_client();"
        "from kapclinic.core.error_reporting import scrub_event;"
        "print(s.SENTRY_ENABLED, c.is_active(), c.options.get('send_default_pii'),"
        " c.options.get('include_local_variables'), c.options.get('max_request_body_size'),"
        " c.options.get('before_send') is scrub_event)"
    )
    off = _settings_run({}, code)
    assert off.stdout.split()[:2] == ["False", "False"], off.stderr
    on = _settings_run({"SENTRY_DSN": FAKE_DSN}, code)
    assert on.stdout.split() == ["True", "True", "False", "False", "never", "True"], on.stderr


def test_bad_sentry_dsn_stops_start_up_with_a_sentence() -> None:
    out = _settings_run({"SENTRY_DSN": "not-a-dsn"}, "print('started')")
    assert out.returncode == 2
    assert "SENTRY_DSN is not a valid Sentry DSN" in out.stderr and "started" not in out.stdout


END_TO_END = """
import json, sentry_sdk
from functools import partial
from sentry_sdk.transport import Transport
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory, override_settings
from kapclinic.core.error_reporting import init_error_reporting

sent = []

class Keep(Transport):
    def capture_envelope(self, envelope):
        for item in envelope.items:
            if item.type == "event":
                sent.append(item.payload.json)

init_error_reporting("%s", "test", init=partial(sentry_sdk.init, transport=Keep))
environ = RequestFactory().post(
    "/boom/?q=%s", {"name": "%s"}, HTTP_X_REQUEST_ID="e2e42", HTTP_COOKIE="preference=secret-cookie",
    HTTP_USER_AGENT="Mozilla/5.0", HTTP_AUTHORIZATION="Bearer secret-token",
).environ
status = []
with override_settings(ROOT_URLCONF="kapclinic.core.tests.urls_error", ALLOWED_HOSTS=["testserver"]):
    # Through the WSGI handler, as gunicorn calls it, so the SDK's WSGI and Django hooks both run.
    b"".join(WSGIHandler()(environ, lambda s, h, *a: status.append(s)))
sentry_sdk.flush()
print(json.dumps({"status": status[0], "events": sent}))
"""


def test_a_500_reaches_sentry_scrubbed_end_to_end() -> None:
    """The real SDK and Django integration, with an in-memory transport: no network."""
    code = END_TO_END % (FAKE_DSN, "Jane", MARKER)
    out = _settings_run({}, code)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"].startswith("500")
    [event] = result["events"]
    dumped = json.dumps(event)
    assert "Jane" not in dumped and "secret" not in dumped and "Mozilla" not in dumped
    types = [value["type"] for value in event["exception"]["values"]]
    assert types == ["IntegrityError", "RuntimeError"]
    assert all(value.get("value") in (None, "", "[Filtered]") for value in event["exception"]["values"])
    frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
    assert any(frame["function"] == "boom" for frame in frames)
    assert all("vars" not in frame for frame in frames)
    assert event["tags"]["request_id"] == "e2e42"
    assert event["request"]["method"] == "POST"
    assert event["request"]["headers"]["X-Request-Id"] == "e2e42"
    assert set(event["request"]) == {"method", "headers"}
    assert event["transaction"] == "/boom/"
    assert "user" not in event
