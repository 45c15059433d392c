"""Optional error reporting to Sentry (or a Sentry-compatible service) when SENTRY_DSN is set.

Nothing about a patient may leave the clinic in an error report. The SDK is told not to collect
personal data (send_default_pii=False), local variables (include_local_variables=False) or request
bodies (max_request_body_size="never"), and every event then passes through `scrub_event`, which keeps
only what diagnoses a failure: the exception classes and their stack frames (code, not values), the
route pattern, the request method, a short allowlist of headers, the runtime, and the request id that
also appears on the clinic's own log line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kapclinic.core.env import ConfigError
from kapclinic.core.logging import get_request_id

# Headers that say nothing about who the patient or the user is.
SAFE_HEADERS = frozenset(
    {"accept", "content-length", "content-type", "host", "hx-request", "x-forwarded-proto", "x-request-id"}
)
# Request fields kept: the method only. url and query_string can carry record ids or search terms;
# data, cookies, env and the user's address are dropped.
_SAFE_REQUEST_KEYS = frozenset({"method"})
# Breadcrumb fields kept: what happened and when, not the message or its data (SQL, log text, URLs).
_SAFE_BREADCRUMB_KEYS = frozenset({"type", "category", "level", "timestamp"})
FILTERED = "[Filtered]"


def _scrub_frames(container: dict[str, Any]) -> None:
    frames = (container.get("stacktrace") or {}).get("frames") or []
    for frame in frames:
        frame.pop("vars", None)


def scrub_event(event: Any, hint: Any = None) -> Any:
    """before_send: remove everything that could identify a patient or a user from an event."""
    request = event.get("request")
    if isinstance(request, dict):
        kept = {key: value for key, value in request.items() if key in _SAFE_REQUEST_KEYS}
        headers = request.get("headers") or {}
        kept["headers"] = {
            name: value for name, value in dict(headers).items() if name.lower() in SAFE_HEADERS
        }
        event["request"] = kept
    event.pop("user", None)
    event.pop("extra", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        # The class and the frames stay; the message may quote patient data (an IntegrityError's row).
        if exception.get("value"):
            exception["value"] = FILTERED
        _scrub_frames(exception)
    for thread in (event.get("threads") or {}).get("values") or []:
        _scrub_frames(thread)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        # The format string is code; its arguments and the formatted text may be data.
        event["logentry"] = {"message": logentry.get("message", ""), "params": []}
    if "message" in event and "logentry" not in event:
        event["message"] = FILTERED
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict):
        values = breadcrumbs.get("values") or []
        breadcrumbs["values"] = [
            {key: value for key, value in crumb.items() if key in _SAFE_BREADCRUMB_KEYS} for crumb in values
        ]
    elif isinstance(breadcrumbs, list):
        event["breadcrumbs"] = [
            {key: value for key, value in crumb.items() if key in _SAFE_BREADCRUMB_KEYS}
            for crumb in breadcrumbs
        ]
    request_id = get_request_id()
    if request_id != "-":
        tags = event.get("tags")
        if not isinstance(tags, dict):
            tags = {}
            event["tags"] = tags
        tags["request_id"] = request_id
    return event


def check_dsn(dsn: str) -> None:
    """Raise ConfigError when SENTRY_DSN is set to something the SDK cannot use."""
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(dsn)
    except BadDsn as exc:
        raise ConfigError(f"The environment variable SENTRY_DSN is not a valid Sentry DSN: {exc}.") from None


def sentry_options(dsn: str, environment: str) -> dict[str, Any]:
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    return {
        "dsn": dsn,
        "environment": environment,
        "send_default_pii": False,
        "include_local_variables": False,
        "max_request_body_size": "never",
        "before_send": scrub_event,
        # No performance tracing: spans would carry SQL and URLs past the scrubber.
        "traces_sample_rate": 0.0,
        "integrations": [
            # Routes are reported as their URL pattern (/patients/<int:pk>/), not the path.
            DjangoIntegration(transaction_style="url"),
            # Log lines become breadcrumbs (scrubbed to their category and level) but not events:
            # the DjangoIntegration already reports the exception behind a 500.
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
    }


def init_error_reporting(dsn: str, environment: str, init: Callable[..., Any] | None = None) -> bool:
    """Start the Sentry SDK when a DSN is configured; return whether it was started."""
    if not dsn:
        return False
    if init is None:
        import sentry_sdk

        init = sentry_sdk.init
    init(**sentry_options(dsn, environment))
    return True
