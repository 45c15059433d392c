from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client


@pytest.mark.urls("kapclinic.core.tests.urls_error")
def test_server_error_page_has_request_id_and_log_has_no_patient_data(db: Any, caplog: Any) -> None:
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/boom/")
    assert response.status_code == 500
    rid = response["X-Request-ID"]
    html = response.content.decode()
    assert rid in html and "Jane" not in html and "Traceback" not in html
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RuntimeError" in logged
    assert "Jane" not in logged and "1980" not in logged


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
