from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from kapclinic.core.logging import SafeTracebackFormatter

MARKER = "Jane Example, DOB 1980-01-01"


@pytest.mark.urls("kapclinic.core.tests.urls_error")
def test_server_error_page_has_request_id_and_log_has_no_patient_data(db: Any, caplog: Any) -> None:
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/boom/", {"name": MARKER})
    assert response.status_code == 500
    rid = response["X-Request-ID"]
    html = response.content.decode()
    assert rid in html and "Jane" not in html and "Traceback" not in html
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert "Jane" not in logged and "1980" not in logged


@pytest.mark.urls("kapclinic.core.tests.urls_error")
def test_server_error_log_has_traceback_frames_and_request_id_but_no_message_body_or_locals(
    db: Any, caplog: Any
) -> None:
    """The patient's name is in the request body, a local variable and both exception messages."""
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.post("/boom/", {"name": MARKER}, HTTP_X_REQUEST_ID="req123abc")
    assert response.status_code == 500
    assert response["X-Request-ID"] == "req123abc"
    [record] = [r for r in caplog.records if r.name == "kapclinic.request"]
    assert record.levelno == logging.ERROR and record.exc_info is None
    assert record.request_id == "req123abc"
    assert record.view == "boom" and record.exception_class == "RuntimeError"
    text = record.getMessage()
    # The chain, each frame's file, line, function and source line.
    assert "Traceback (most recent call last):" in text
    assert "django.db.utils.IntegrityError (message withheld" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert "RuntimeError (message withheld" in text
    assert 'urls_error.py", line' in text and ", in boom" in text
    assert 'raise RuntimeError(f"Synthetic failure mentioning {patient_name}") from exc' in text
    # The console handler's line (settings.LOGGING) carries the request id.
    from django.conf import settings

    fmt: str = settings.LOGGING["formatters"]["plain"]["fmt"]  # type: ignore[index]
    line = SafeTracebackFormatter(fmt).format(record)
    assert "[req req123abc] server error RuntimeError in view boom" in line
    for part in ("Jane", "1980", "Example"):
        assert part not in text and part not in line


@pytest.mark.urls("kapclinic.core.tests.urls_error")
def test_server_error_in_a_middleware_is_logged_too(db: Any, caplog: Any, settings: Any) -> None:
    """Before, only view exceptions were logged (process_exception): a failing middleware left no trace."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "kapclinic.core.tests.urls_error.BoomMiddleware"]
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/mw-boom/", {"name": MARKER}, HTTP_X_REQUEST_ID="mw42")
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.name == "kapclinic.request"]
    assert record.request_id == "mw42" and record.exception_class == "KeyError"
    text = record.getMessage()
    assert "server error KeyError in view unresolved" in text
    assert ", in __call__" in text and "raise KeyError(patient_name)" in text
    assert "Jane" not in text and "1980" not in text


def test_log_exception_anywhere_prints_frames_but_not_the_message() -> None:
    logger = logging.getLogger("kapclinic.tests.safe")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        try:
            parsed: dict[str, int] = {"x": int(MARKER)}
            assert parsed
        except ValueError:
            logger.exception("could not parse a field")
    finally:
        logger.removeHandler(handler)
    out = SafeTracebackFormatter("%(message)s").format(records[0])
    assert out.startswith("could not parse a field\nTraceback (most recent call last):")
    assert "in test_log_exception_anywhere_prints_frames_but_not_the_message" in out
    assert out.rstrip().endswith("ValueError (message withheld: it may quote patient data)")
    assert "Jane" not in out and "1980" not in out


def test_unknown_url_gets_helpful_404(db: Any, client: Any) -> None:
    response = client.get("/definitely/not/here/")
    assert response.status_code == 404
    assert "We could not find that page" in response.content.decode()


def test_healthz(db: Any, client: Any) -> None:
    assert client.get("/home/healthz").json() == {"status": "ok"}


def test_signed_in_pages_are_not_cached(world: Any, client: Any) -> None:
    client.force_login(world.nurse)
    assert client.get("/patients/")["Cache-Control"] == "no-store"


def test_production_security_settings() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {
        **os.environ,
        "KAP_ENV": "production",
        "SECRET_KEY": "s" * 60,
        "ALLOWED_HOSTS": "clinic.example.org",
    }
    code = (
        "import django,os;os.environ['DJANGO_SETTINGS_MODULE']='kapclinic.settings';django.setup();"
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_NAME, s.SECURE_HSTS_SECONDS,"
        " s.MFA_REQUIRED_FOR_STAFF, s.SECURE_SSL_REDIRECT)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
    )
    assert out.stdout.split() == ["False", "True", "__Host-sessionid", "31536000", "True", "True"], out.stderr
