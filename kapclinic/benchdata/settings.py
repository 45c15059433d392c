"""Bench-only settings: the normal settings (run with KAP_ENV=demo: DEBUG off, gunicorn) plus the
framework-floor URLs and an X-Bench-Queries response header. Never used outside `make bench`."""

from kapclinic.settings import *  # noqa: F403
from kapclinic.settings import MIDDLEWARE

KAP_BENCH = True
ROOT_URLCONF = "kapclinic.benchdata.urls"
# Outermost, so the count covers every middleware (sessions, auth, clinic context, audit).
MIDDLEWARE = ["kapclinic.benchdata.middleware.QueryCountMiddleware", *MIDDLEWARE]
