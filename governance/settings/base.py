"""Settings shared by every environment, read from the environment (django-environ).

The embedded default is SQLite plus a filesystem Celery broker, so that a fresh machine
needs no server; ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-only-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "governance",
    "inventory",
    "delegations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "governance.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "governance.middleware.ViewerTimezoneMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "governance.urls"
WSGI_APPLICATION = "governance.wsgi.application"
ASGI_APPLICATION = "governance.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "governance.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'warrant.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web process, the worker and beat share one file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"}
    )
else:
    # PostgreSQL: keep connections across requests (checked before reuse), so that the statements the
    # runtime decision prepares on a connection (delegations.decisions) are planned once per connection.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("WARRANT_DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The runtime decision's queries are prepared on PostgreSQL after a few uses on a connection; behind a
# transaction-pooling proxy, which cannot keep prepared statements, set WARRANT_DB_PREPARE=false.
WARRANT_DB_PREPARE = env.bool("WARRANT_DB_PREPARE", default=True)
# On PostgreSQL a decision log row is committed without waiting for its WAL flush (synchronous_commit
# off for that one insert): a database crash may lose the last fraction of a second of decision log
# rows, never anything else. WARRANT_DECISION_LOG_DURABLE=true waits for the flush, as every other write does.
WARRANT_DECISION_LOG_DURABLE = env.bool("WARRANT_DECISION_LOG_DURABLE", default=False)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses every sign-in (web and admin) of a locked-out username + IP pair.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"

# Sign-in throttling (django-axes, OWASP ASVS V2.2.1): 5 failures for one username from one IP
# lock that pair out for 15 minutes; a successful sign-in clears the count. The lockout page is
# the sign-in page with the reason (``governance.views.login_locked_out``, status 429).
AXES_ENABLED = True
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "governance.views.login_locked_out"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# Stored and computed in UTC; each viewer sees their own timezone (ViewerTimezoneMiddleware).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

MAILERS = {
    "default": {"BACKEND": env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")},
}
# The address people reach Warrant at, for links in e-mails.
WARRANT_BASE_URL = env("WARRANT_BASE_URL", default="http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="warrant@localhost")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.api.authentication.IntegrationTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: integrations always get JSON, errors included. Local settings add the
    # browsable API for people exploring it; the documented API is at /api/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies with bounded nesting; multipart and form bodies for imports.
    "DEFAULT_PARSER_CLASSES": [
        "governance.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "governance.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api.exception_handlers.exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DATETIME_FORMAT": "iso-8601",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Warrant API",
    "DESCRIPTION": "Governance of AI agents and other non-human identities.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "AgentKindEnum": "inventory.models.Agent.Kind",
        "AgentSourceEnum": "inventory.models.Agent.Source",
        "CredentialKindEnum": "inventory.models.Credential.Kind",
        "ImportSourceEnum": "inventory.models.ImportRun.Source",
        "FindingKindEnum": "governance.findings.FINDING_KIND_CHOICES",
        "AccessLevelEnum": "inventory.models.AccessLevel",
        "GrantStatusEnum": "delegations.models.DelegationGrant.Status",
        "GrantStateEnum": "delegations.models.DelegationGrant.STATES",
        "TrustedIssuerKindEnum": "inventory.models.TrustedIssuer.Kind",
    },
}

# Celery: one app configured from these settings (governance/celery.py).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue = VAR_DIR / "broker"
    for _folder in ("queue", "processed", "control"):
        (_queue / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue / "queue"),
        "data_folder_out": str(_queue / "queue"),
        "processed_folder": str(_queue / "processed"),
        "control_folder": str(_queue / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# The organisation's time zone (IANA name): what "today" means for attestation due dates, and the zone
# the daily jobs' beat schedule is read in (``governance.jobs``), so that each runs once per local day
# across daylight-saving changes. Storage stays UTC (TIME_ZONE) and each viewer sees their own zone.
WARRANT_TIME_ZONE = env("WARRANT_TIME_ZONE", default="UTC")
# Beat's default zone for schedules that name none; the schedule rows of ``jobs_schedule_ensure``
# each carry their own zone (UTC for the hourly jobs, WARRANT_TIME_ZONE for the daily ones).
CELERY_TIMEZONE = WARRANT_TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"

# One handler (the root's): Django's own console handler would print every record twice under DEBUG.
# A refused request (403, 404, 409) is one WARNING line without traceback; 5xx keep theirs.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "refusals": {"()": "governance.logfilters.RefusalFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "mail_admins": {
            "level": "ERROR",
            "filters": ["require_debug_false"],
            "class": "django.utils.log.AdminEmailHandler",
        },
    },
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
        "django.request": {"filters": ["refusals"], "propagate": True},
        # Sign-in throttling: failures and lockouts (WARNING), not every successful sign-in.
        "axes": {"level": "WARNING", "propagate": True},
    },
}

# Integration tokens: maximum lifetime a person may choose, in days.
WARRANT_TOKEN_MAX_DAYS = env.int("WARRANT_TOKEN_MAX_DAYS", default=365)
# Plain-http JWKS URLs of trusted issuers are accepted only to 127.0.0.1/localhost, and only with
# DEBUG or this setting on (local identity providers in development); production keys come over https.
WARRANT_ALLOW_HTTP_JWKS = env.bool("WARRANT_ALLOW_HTTP_JWKS", default=False)
