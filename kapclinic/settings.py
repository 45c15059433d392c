"""KAP Clinic settings: one module, driven by environment variables (see README "Configuration").

KAP_ENV selects the mode:
- development: DEBUG on, SQLite under var/, console email, MFA optional.
- demo: what `make run` uses; DEBUG off, served by gunicorn on loopback over plain HTTP, MFA optional.
- production: DEBUG off, HTTPS-only cookies, HSTS, MFA mandatory for staff, SECRET_KEY required.
- test: fast password hashing, in-memory email.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dj_database_url

from kapclinic.audit.keys import key_problems as audit_key_problems
from kapclinic.core.env import ConfigError, Env, cache_from_url
from kapclinic.core.error_reporting import check_dsn, init_error_reporting
from kapclinic.fhirapi.signing_key import id_token_key
from kapclinic.messaging.sms import config_problems as sms_config_problems

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()

try:
    KAP_ENV = env.choice("KAP_ENV", "development", ("development", "demo", "production", "test"))
    IS_PRODUCTION = KAP_ENV == "production"
    IS_TEST = KAP_ENV == "test" or "pytest" in sys.modules

    DEBUG = env.bool("DJANGO_DEBUG", KAP_ENV == "development")
    if IS_PRODUCTION:
        SECRET_KEY = env.str("SECRET_KEY")
        if len(SECRET_KEY) < 50:
            raise ConfigError("The environment variable SECRET_KEY must be at least 50 characters long.")
    else:
        SECRET_KEY = env.str("SECRET_KEY", "insecure-development-key-" + "x" * 40)

    ALLOWED_HOSTS = env.list(
        "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "testserver"]
    )
    if IS_PRODUCTION and not ALLOWED_HOSTS:
        raise ConfigError("The environment variable ALLOWED_HOSTS must list the clinic's host names.")
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", [])
    # The reverse proxies whose X-Forwarded-For is believed (kapclinic.core.actor.client_ip): empty means
    # none, so the client address is the connection's own.
    TRUSTED_PROXIES = env.networks("TRUSTED_PROXIES")

    VAR_DIR = Path(env.str("KAP_VAR_DIR", str(BASE_DIR / "var")))
    _default_db = f"sqlite:///{VAR_DIR / 'kapclinic.sqlite3'}"
    _db_url = env.str("DATABASE_URL", _default_db)
    try:
        _db = dj_database_url.parse(_db_url, conn_max_age=env.int("DB_CONN_MAX_AGE", 60, minimum=0))
    except Exception as exc:  # dj_database_url raises several exception types
        raise ConfigError(f"The environment variable DATABASE_URL could not be parsed: {exc}.") from None
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        # Connections persist across requests (DB_CONN_MAX_AGE) on SQLite too: opening one costs each request
        # about 2 ms (the PRAGMAs, the schema parse, a cold page cache and SQLite's statement cache starting
        # empty), 4 ms on a page of 15 queries. See docs/benchmarks.md, session 4.
        _db["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    else:
        _db["CONN_HEALTH_CHECKS"] = True
    DATABASES = {"default": _db}

    MFA_REQUIRED_FOR_STAFF = env.bool("MFA_REQUIRED_FOR_STAFF", IS_PRODUCTION)
    STAFF_IDLE_TIMEOUT_MINUTES = env.int("STAFF_IDLE_TIMEOUT_MINUTES", 15, minimum=1, maximum=720)
    AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
    AXES_COOLOFF_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", 30, minimum=1, maximum=10080)
    MEASURE_LINK_HOURS = env.int("MEASURE_LINK_HOURS", 72, minimum=1, maximum=24 * 30)
    # Issue 17: a draft note shows in its author's notifications once its visit is this many days old
    # (the clinic's documentation policy, not a clinical or regulatory number).
    NOTE_SIGN_DUE_DAYS = env.int("NOTE_SIGN_DUE_DAYS", 1, minimum=0, maximum=60)
    MFA_ENROLMENT_LINK_HOURS = env.int("MFA_ENROLMENT_LINK_HOURS", 72, minimum=1, maximum=24 * 30)
    PROCESS_NOTE_KEYS = env.list("PROCESS_NOTE_KEYS", [])
    # Audit trail: the HMAC key of the hash chain (`id:secret`, newest first; kapclinic/audit/keys.py) and
    # where signed checkpoints go (kapclinic/audit/checkpoints.py; README "Audit trail").
    AUDIT_CHAIN_KEY = env.list("AUDIT_CHAIN_KEY", [])
    for _problem in audit_key_problems(AUDIT_CHAIN_KEY):
        raise ConfigError(_problem)
    if IS_PRODUCTION and not AUDIT_CHAIN_KEY:
        # gunicorn runs no system checks: stop here rather than fail every audited request later.
        raise ConfigError(
            "The environment variable AUDIT_CHAIN_KEY is required in production (`id:secret`, a secret of at "
            "least 32 random characters kept outside the database; README, 'Audit trail')."
        )
    AUDIT_CHECKPOINT_FILE = env.str("AUDIT_CHECKPOINT_FILE", str(VAR_DIR / "audit-checkpoints.jsonl"))
    AUDIT_CHECKPOINT_EMAIL = env.list("AUDIT_CHECKPOINT_EMAIL", [])
    AUDIT_CHECKPOINT_WEBHOOK = env.str("AUDIT_CHECKPOINT_WEBHOOK", "")
    if AUDIT_CHECKPOINT_WEBHOOK and not AUDIT_CHECKPOINT_WEBHOOK.startswith(("https://", "http://")):
        raise ConfigError(
            "The environment variable AUDIT_CHECKPOINT_WEBHOOK must start with https:// (or http://)."
        )
    AUDIT_CHECKPOINT_MINUTES = env.int("AUDIT_CHECKPOINT_MINUTES", 60, minimum=1, maximum=1440)
    SITE_URL = env.str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
    # The RSA key that signs OpenID Connect id_tokens of the FHIR API (kapclinic/fhirapi/signing_key.py):
    # from the environment in production (without it, no id_tokens), generated outside production.
    FHIR_ID_TOKEN_KEY = id_token_key(
        env.str("FHIR_ID_TOKEN_KEY", ""), production=IS_PRODUCTION, test=IS_TEST, var_dir=VAR_DIR
    )
    # Text messages (issue 17; kapclinic/messaging/sms.py and README "Configuration").
    SMS_BACKEND = env.str("SMS_BACKEND", "console")
    TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", "")
    TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", "")
    TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", "")
    SMS_API_BASE = env.str("SMS_API_BASE", "https://api.twilio.com").rstrip("/")
    for _problem in sms_config_problems(
        SMS_BACKEND, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER, SMS_API_BASE
    ):
        raise ConfigError(_problem)

    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        "django.core.mail.backends.smtp.EmailBackend"
        if IS_PRODUCTION
        else "django.core.mail.backends.console.EmailBackend",
    )
    EMAIL_HOST = env.str("EMAIL_HOST", "localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", "") or ""
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", True)
    DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "KAP Clinic <no-reply@kapclinic.invalid>")
    CACHES = {"default": cache_from_url("CACHE_URL", env.str("CACHE_URL", "locmem://"))}
    LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))
    # Chart documents (kapclinic/documents): the largest file accepted, and where files are kept (outside
    # the web root; README "Chart documents" says how to use object storage instead).
    DOCUMENT_MAX_MB = env.int("DOCUMENT_MAX_MB", 20, minimum=1, maximum=200)
    _documents_dir = VAR_DIR / ("test-documents" if IS_TEST else "documents")
    DOCUMENTS_ROOT = Path(env.str("DOCUMENTS_ROOT", str(_documents_dir)))
    # Optional error reporting (kapclinic/core/error_reporting.py): off unless a DSN is given.
    SENTRY_DSN = env.str("SENTRY_DSN", "")
    if SENTRY_DSN:
        check_dsn(SENTRY_DSN)
except ConfigError as _exc:
    sys.stderr.write(f"KAP Clinic cannot start: {_exc}\n")
    raise SystemExit(2) from None

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "kapclinic.core",
    "kapclinic.accounts",
    "kapclinic.audit",
    "kapclinic.patients",
    "kapclinic.public",
    "kapclinic.intake",
    "kapclinic.consent",
    "kapclinic.treatment",
    "kapclinic.scheduling",
    "kapclinic.sessions",
    "kapclinic.measures",
    "kapclinic.notes",
    "kapclinic.portal",
    "kapclinic.interop",
    "kapclinic.messaging",
    "kapclinic.drafts",
    "kapclinic.inventory",
    "kapclinic.billing",
    "kapclinic.documents",
    "kapclinic.fhirapi",
    "oauth2_provider",  # SMART on FHIR authorization (kapclinic/fhirapi, docs/fhir-api.md)
    "kapclinic.conversations",
    "kapclinic.notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "kapclinic.core.middleware.RequestIdMiddleware",
    "kapclinic.core.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kapclinic.core.middleware.NoStoreMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
    "kapclinic.accounts.middleware.ClinicContextMiddleware",
    "kapclinic.accounts.middleware.StaffSecurityMiddleware",
    "kapclinic.audit.middleware.RefusalAuditMiddleware",
    "kapclinic.consent.kiosk.KioskMiddleware",
]

# SMART App Launch v2 over django-oauth-toolkit (docs/fhir-api.md#authorization): authorization code
# with PKCE S256 only, backend services by signed JWT assertion (kapclinic/fhirapi/oauth.py).
OAUTH2_PROVIDER = {
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,  # "plain" refused: S256 only
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("FHIR_ACCESS_TOKEN_SECONDS", 3600),
    "SCOPES_BACKEND_CLASS": "kapclinic.fhirapi.scopes.SmartScopes",
    "OAUTH2_VALIDATOR_CLASS": "kapclinic.fhirapi.oauth.SmartValidator",
    # OAuth 2.0 Security BCP (RFC 9700): the `iss` authorization-response parameter, access and refresh
    # tokens stored hashed, a replayed refresh token revokes its whole family; plain-http redirect URIs
    # (native apps' loopback callbacks, the test server) outside production only.
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"] if KAP_ENV == "production" else ["https", "http"],
    # OpenID Connect for `openid fhirUser` (docs/fhir-api.md#openid): id_tokens signed RS256 with
    # FHIR_ID_TOKEN_KEY; the issuer is `{SITE_URL}/fhir` (SmartValidator.get_oidc_issuer_endpoint), as in
    # /fhir/.well-known/smart-configuration.
    "OIDC_ENABLED": bool(FHIR_ID_TOKEN_KEY),
    "OIDC_RSA_PRIVATE_KEY": FHIR_ID_TOKEN_KEY,
    # an id_token lives as long as an access token (server policy)
    "ID_TOKEN_EXPIRE_SECONDS": env.int("FHIR_ACCESS_TOKEN_SECONDS", 3600),
}
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"  # named for the fhirapi migration
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"  # named for the fhirapi migration (LaunchPatient)
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # likewise
FHIR_EXPORT_EXPIRE_HOURS = env.int("FHIR_EXPORT_EXPIRE_HOURS", 24)  # Bulk Data files are deleted after
FHIR_EXPORT_DIR = Path(env.str("FHIR_EXPORT_DIR", str(VAR_DIR / "fhir-exports")))
# A Bulk export is cut into this many parts per resource type (contiguous ranges of the exported patients),
# each a task of its own, so that several `db_worker` processes write one export in parallel
# (docs/fhir-api.md#bulk-data): run at least as many workers as cores to use them.
FHIR_EXPORT_PARTS = env.int("FHIR_EXPORT_PARTS", 4)

ROOT_URLCONF = "kapclinic.urls"
WSGI_APPLICATION = "kapclinic.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if IS_TEST:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "kapclinic" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kapclinic.core.context_processors.clinic_context",
            ],
        },
    }
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "America/New_York"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "kapclinic" / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Chart documents: never under STATIC_ROOT or a served MEDIA_URL (base_url None: no public address);
    # every read goes through documents.views and the policy. Swap the backend for django-storages' S3
    # storage to keep them in object storage (README "Chart documents").
    "documents": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": DOCUMENTS_ROOT,
            "base_url": None,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if (DEBUG or IS_TEST)
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = IS_TEST

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = 60 * 60 * 12
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
    SECURE_HSTS_SECONDS = 31536000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

AXES_COOLOFF_TIME = AXES_COOLOFF_MINUTES / 60  # hours
# Lock the (account, address) pair: locking the account alone would let anyone lock a nurse out
# by typing wrong passwords for her account from elsewhere; locking the address alone
# would lock out a whole clinic behind one NAT address.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The same client address as the audit trail and the inquiry rate limit: X-Forwarded-For is believed only
# from TRUSTED_PROXIES, so nobody can pose as a colleague's address by sending the header.
AXES_CLIENT_IP_CALLABLE = "kapclinic.core.actor.client_ip"
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True

AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True

OTP_TOTP_ISSUER = "KAP Clinic"

TASKS = {"default": {"BACKEND": "django_tasks_db.backend.DatabaseBackend"}}
if IS_TEST:
    TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

AUDIT_DB_TRIGGERS = not IS_TEST

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "kapclinic.core.logging.RequestIdFilter"}},
    "formatters": {
        # Tracebacks (log.exception) print code lines only, never the exception message.
        "plain": {
            "()": "kapclinic.core.logging.SafeTracebackFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s [req %(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's request logger prints the request line and can carry identifiers in URLs; our
        # RequestIdMiddleware logs 500s itself with the request id, the exception class and the
        # traceback's code lines, and no patient data.
        "django.request": {"handlers": [], "level": "CRITICAL", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # WeasyPrint narrates every PDF at INFO and its warnings can quote the document's text: errors only.
        "weasyprint": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "fontTools": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

SENTRY_ENABLED = init_error_reporting(SENTRY_DSN, environment=KAP_ENV)
