"""Settings read from the environment; with no variable set they give the embedded default.

Embedded default: SQLite at var/mlab.sqlite3, an embedded redis-server on a unix socket under var/, the
DuckDB demo warehouse at var/warehouse.duckdb. DATABASE_URL and REDIS_URL switch to MySQL/MariaDB and a
real Redis. See .env.example for every variable.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import environ

from mlabsite import embedded

BASE_DIR = Path(__file__).resolve().parents[2]
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("MLAB_VAR_DIR", default=str(BASE_DIR / "var")))
# 0700, and everything this process creates there 0600 (umask 077): the SQLite file, Redis socket and log, ...
embedded.var_dir_private(VAR_DIR)

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Development-only key; production.py requires DJANGO_SECRET_KEY and has no default.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="mlab-dev-only-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_rq",
    "axes",
    "apps.artifacts.apps.ArtifactsConfig",
    "apps.templates.apps.AlgoTemplatesConfig",
    "apps.training.apps.TrainingConfig",
    "apps.deploy.apps.DeployConfig",
    "apps.demo.apps.DemoConfig",
    "mlabsite.apps.MlabsiteConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "mlabsite.static_files.StaticFilesMiddleware",  # WhiteNoise, streaming asynchronously under ASGI
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a lockout into the page of AXES_LOCKOUT_TEMPLATE.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mlabsite.urls"
WSGI_APPLICATION = "mlabsite.wsgi.application"
ASGI_APPLICATION = "mlabsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide admin templates (the header's links, the index's "Start here"), before the apps' own.
        "DIRS": [BASE_DIR / "mlabsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mlab.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            "isolation_level": "read committed",
        }
    )
    # Keep connections shorter-lived than the server's wait_timeout, and check them before reuse.
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and RQ workers write concurrently: WAL, and writers take the lock up front
    # instead of failing with "database is locked" half-way through a transaction.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, RQ, locks ------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="") or embedded.redis_url(VAR_DIR, db=env.int("MLAB_REDIS_DB", 0))
REDIS_EMBEDDED = not env.str("REDIS_URL", default="")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mlab",
        "OPTIONS": {
            # JSON, not pickle: nothing read back from Redis is ever unpickled.
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 5,
        },
    }
}

RQ_SERIALIZER = "rq.serializers.JSONSerializer"  # jobs take ids only; JSON keeps pickle out of Redis
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 3600, "SERIALIZER": RQ_SERIALIZER},
}
# Our services register enqueueing with transaction.on_commit themselves. The worker class closes database
# connections around jobs, reaps runs whose worker died (apps/training/worker.py) and sweeps the scenes' event
# streams (apps/deploy/worker.py).
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": "apps.deploy.worker.MlabWorker"}
# Imported by the forking worker before it forks, so that each job's process inherits them.
MLAB_WORKER_PRELOAD = ["apps.training.jobs", "apps.deploy.jobs"]

# --- Auth, i18n, static -----------------------------------------------------------------------------
# django-axes first: it refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Admin login lockout (django-axes): MLAB_LOGIN_FAILURE_LIMIT failed logins for one username from one address
# lock that pair out for MLAB_LOGIN_COOLOFF_MINUTES. Attempts and lockouts are rows in the database (axes'
# default handler): they are shared by every web process, survive a Redis flush or restart, and a superuser
# sees and clears them in the admin (Axes › Access attempts) or with `manage.py axes_reset`.
AXES_FAILURE_LIMIT = env.int("MLAB_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("MLAB_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_VERBOSE = False  # no banner on every command; lockouts are still logged as warnings
AXES_LOCKOUT_CALLABLE = "mlabsite.admin.login_locked_out"  # a plain page saying for how long, 429
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# In development WhiteNoise serves straight from the app and project static folders.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "admin:login"

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    # Token first: an anonymous API call gets 401 with "WWW-Authenticate: Token".
    # Our tokens (stored as digests, mlabsite/tokens.py; failures throttled per address, mlabsite/auth_throttle.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "mlabsite.api_access.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The admin's model permissions, named by each view (`required_permissions`); 403 names what is missing.
    "DEFAULT_PERMISSION_CLASSES": ["mlabsite.api_access.ModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's three, with a nesting limit on JSON (deeper bodies are a 400; see mlabsite/jsonlimits.py).
    "DEFAULT_PARSER_CLASSES": [
        "mlabsite.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "mlabsite.api.exception_handler",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Mlab API",
    "DESCRIPTION": "Algorithm templates, training runs, model versions, deployments and the client config.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Named after their models, so the schema's enums do not depend on the generator's numbering.
    "ENUM_NAME_OVERRIDES": {
        "DataSourceKindEnum": "apps.training.models.DataSource.Kind",
        "RunEngineEnum": "apps.training.models.TrainingRun.Engine",
    },
    # The public routes served by plain Django views (config, artifact, healthz), described without touching them.
    "PREPROCESSING_HOOKS": ["mlabsite.openapi.document_plain_views"],
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.SessionAuthentication",
        "mlabsite.api_access.ApiTokenAuthentication",
    ],
}

# Failed API token authentications: MLAB_AUTH_FAILURE_LIMIT different wrong tokens from one client address
# within a window of MLAB_AUTH_FAILURE_WINDOW_SECONDS (opened by the first failure), then 429 with Retry-After
# until the window closes. Counted in Redis (every web process shares the count); 0 turns the throttle off.
MLAB_AUTH_FAILURE_LIMIT = env.int("MLAB_AUTH_FAILURE_LIMIT", default=10)
MLAB_AUTH_FAILURE_WINDOW_SECONDS = env.int("MLAB_AUTH_FAILURE_WINDOW_SECONDS", default=600)

# --- Mlab -----------------------------------------------------------------------------------------
MLAB_WAREHOUSE_PATH = Path(env.str("MLAB_WAREHOUSE_PATH", default=str(VAR_DIR / "warehouse.duckdb")))

# --- Where data sources may point (apps/training/datasources/policy.py) ----------------------------
# Checked when a source is saved and again each time it is opened. DuckDB files must lie under one of these
# directories, symlinks and ".." resolved first.
MLAB_DUCKDB_ROOTS = [Path(p) for p in env.list("MLAB_DUCKDB_ROOTS", default=[str(VAR_DIR)])]
# Hosts a MySQL source may connect to: exact names, patterns ("*.internal.example.com": any name ending so),
# IP addresses and CIDR ranges ("10.20.0.0/16"). A name is matched as written, never resolved to an address.
MLAB_DATASOURCE_HOSTS = env.list("MLAB_DATASOURCE_HOSTS", default=["127.0.0.1", "localhost", "::1"])
# Where a MySQL source's TLS files (ssl_ca, ssl_cert, ssl_key) may lie: directories, or single files named
# explicitly. The default holds the system's CA certificates (the /etc/ssl/certs links point into
# /usr/share/ca-certificates) and var/tls.
MLAB_DATASOURCE_TLS_PATHS = [
    Path(p)
    for p in env.list(
        "MLAB_DATASOURCE_TLS_PATHS",
        default=["/etc/ssl/certs", "/usr/share/ca-certificates", str(VAR_DIR / "tls")],
    )
]

# Error reports (the debug page, error e-mails) mask every secret: parameters declared secret by node metadata,
# the PAI/OSS credentials, and what Django hides by name (mlabsite/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "mlabsite.error_reports.SecretMaskingFilter"
DEFAULT_EXCEPTION_REPORTER = "mlabsite.error_reports.SecretMaskingReporter"

# The terminal shows warnings and errors (MLAB_LOG_LEVEL=INFO shows everything there too); every process (web,
# worker, scheduler, commands) appends INFO and above to var/log/mlab.log.
LOG_DIR = VAR_DIR / "log"
LOG_DIR.mkdir(exist_ok=True)
MLAB_LOG_LEVEL = env.str("MLAB_LOG_LEVEL", default="WARNING").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"}},
    "filters": {
        "mask_secrets": {"()": "mlabsite.error_reports.SecretMaskingLogFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "level": MLAB_LOG_LEVEL,
            "filters": ["mask_secrets"],
        },
        "file": {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(LOG_DIR / "mlab.log"),
            "formatter": "plain",
            "level": "DEBUG" if MLAB_LOG_LEVEL == "DEBUG" else "INFO",
            "filters": ["mask_secrets"],
        },
        # Django's own: errors mailed to ADMINS when DEBUG is off (the report masks secrets, see above).
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "root": {"handlers": ["console", "file"], "level": "DEBUG" if MLAB_LOG_LEVEL == "DEBUG" else "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's own console handler would print each 4xx/5xx a second time: the root's handlers log it once,
        # and errors are mailed to ADMINS as Django does by default.
        "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
    },
}

# --- PAI training service (the pai engine) ----------------------------------------------------------
# Empty endpoint or keys: the pai engine is not configured. The secret signs requests and nothing else:
# it is never logged or shown (error reports mask the value of every MLAB_PAI_*/MLAB_OSS_* secret, wherever
# it appears: mlabsite/error_reports.py).
MLAB_PAI_ENDPOINT = env.str("MLAB_PAI_ENDPOINT", default="")
MLAB_PAI_ACCESS_KEY_ID = env.str("MLAB_PAI_ACCESS_KEY_ID", default="")
MLAB_PAI_ACCESS_KEY_SECRET = env.str("MLAB_PAI_ACCESS_KEY_SECRET", default="")
# An STS token (with an STS AccessKey pair above): signed as x-acs-security-token / x-oss-security-token.
MLAB_PAI_SECURITY_TOKEN = env.str("MLAB_PAI_SECURITY_TOKEN", default="")
# access-key | sts | default-chain (alibabacloud-credentials: env, ~/.alibabacloud/credentials, ECS RAM role);
# empty: the AccessKey pair (with the token when set).
MLAB_PAI_CREDENTIALS = env.str("MLAB_PAI_CREDENTIALS", default="")
MLAB_PAI_WORKSPACE_ID = env.str("MLAB_PAI_WORKSPACE_ID", default="")
# Empty: each job carries an inline AlgorithmSpec running Mlab's trainer from its code on OSS. Set: jobs run
# the algorithm registered under this name (manage.py pai_register_algorithm).
MLAB_PAI_ALGORITHM_NAME = env.str("MLAB_PAI_ALGORITHM_NAME", default="")
MLAB_PAI_ALGORITHM_PROVIDER = env.str("MLAB_PAI_ALGORITHM_PROVIDER", default="")
MLAB_PAI_ALGORITHM_VERSION = env.str("MLAB_PAI_ALGORITHM_VERSION", default="v1.0.0")
MLAB_PAI_RESOURCE_ID = env.str("MLAB_PAI_RESOURCE_ID", default="")
MLAB_PAI_ECS_SPEC = env.str("MLAB_PAI_ECS_SPEC", default="ecs.c6.xlarge")
MLAB_PAI_MAX_RUNNING_SECONDS = env.int("MLAB_PAI_MAX_RUNNING_SECONDS", default=6 * 3600)
# The inline AlgorithmSpec: the training image (Python 3.11 with pip; required for inline jobs), its job type,
# and whether the trainer's pinned requirements are sent as PythonRequirements for PAI to install.
MLAB_PAI_IMAGE = env.str("MLAB_PAI_IMAGE", default="")
MLAB_PAI_JOB_TYPE = env.str("MLAB_PAI_JOB_TYPE", default="PyTorchJob")
MLAB_PAI_PYTHON_REQUIREMENTS = env.bool("MLAB_PAI_PYTHON_REQUIREMENTS", default=True)
# Passed through to CreateTrainingJob when set: the role jobs read OSS with, environment variables for the
# job (JSON object), and its priority (1-9; 0: PAI's default).
MLAB_PAI_ROLE_ARN = env.str("MLAB_PAI_ROLE_ARN", default="")
MLAB_PAI_ENVIRONMENTS = env.json("MLAB_PAI_ENVIRONMENTS", default={})
MLAB_PAI_PRIORITY = env.int("MLAB_PAI_PRIORITY", default=0)
MLAB_PAI_CONNECT_TIMEOUT = env.float("MLAB_PAI_CONNECT_TIMEOUT", default=5.0)
MLAB_PAI_READ_TIMEOUT = env.float("MLAB_PAI_READ_TIMEOUT", default=30.0)
MLAB_PAI_MAX_RETRIES = env.int("MLAB_PAI_MAX_RETRIES", default=4)
MLAB_PAI_BACKOFF = env.float("MLAB_PAI_BACKOFF", default=0.5)
MLAB_PAI_POLL_SECONDS = env.float("MLAB_PAI_POLL_SECONDS", default=5.0)
# Where the pai engine writes a run's sample before uploading it to OSS, and reads a job's output (temporary).
MLAB_PAI_DATA_DIR = Path(env.str("MLAB_PAI_DATA_DIR", default=str(VAR_DIR / "pai")))
# The PAI console's page of a job, for endpoints of a real region (pai.<region>.aliyuncs.com); empty: no link.
MLAB_PAI_CONSOLE_URL = env.str(
    "MLAB_PAI_CONSOLE_URL",
    default="https://pai.console.aliyun.com/?regionId={region}&workspaceId={workspace}#/training/jobs/{job}",
)

# --- OSS (the PAI data path: samples, the trainer's code, models) --------------------------------------
# Objects live under <prefix>/runs/<run>/{input,output}/ and <prefix>/code/ of the bucket. Use the internal
# endpoint (oss-<region>-internal.aliyuncs.com) when Mlab runs on ECS in the bucket's region.
MLAB_OSS_BUCKET = env.str("MLAB_OSS_BUCKET", default="")
MLAB_OSS_REGION = env.str("MLAB_OSS_REGION", default="")
MLAB_OSS_ENDPOINT = env.str("MLAB_OSS_ENDPOINT", default="")
MLAB_OSS_PREFIX = env.str("MLAB_OSS_PREFIX", default="mlab")
MLAB_OSS_MULTIPART_THRESHOLD = env.int("MLAB_OSS_MULTIPART_THRESHOLD", default=64 * 1024 * 1024)
MLAB_OSS_PART_SIZE = env.int("MLAB_OSS_PART_SIZE", default=16 * 1024 * 1024)
MLAB_OSS_MAX_RETRIES = env.int("MLAB_OSS_MAX_RETRIES", default=4)
MLAB_OSS_MAX_DOWNLOAD_BYTES = env.int("MLAB_OSS_MAX_DOWNLOAD_BYTES", default=2 * 1024 * 1024 * 1024)

# --- Training -------------------------------------------------------------------------------------
MLAB_TRAINING_TIMEOUT_SECONDS = env.int("MLAB_TRAINING_TIMEOUT_SECONDS", default=3 * 3600)
# Threads a local fit may use (LightGBM, the random forest); 0 = every core of the worker's machine. The
# trainer reads the same variable itself where it runs without Django (a PAI job, the command line).
MLAB_TRAIN_THREADS = env.int("MLAB_TRAIN_THREADS", default=0)
# A running job renews its run's heartbeat in Redis; a run without one for MLAB_RUN_REAP_AFTER_SECONDS is
# failed by a worker's maintenance (its worker died).
MLAB_RUN_HEARTBEAT_SECONDS = env.int("MLAB_RUN_HEARTBEAT_SECONDS", default=30)
MLAB_RUN_REAP_AFTER_SECONDS = env.int("MLAB_RUN_REAP_AFTER_SECONDS", default=60)
MLAB_WORKER_MAINTENANCE_SECONDS = env.int("MLAB_WORKER_MAINTENANCE_SECONDS", default=30)
# A queued run whose job is gone from RQ, or that has waited this long, is queued again once, then failed.
MLAB_RUN_QUEUE_LIMIT_SECONDS = env.int("MLAB_RUN_QUEUE_LIMIT_SECONDS", default=6 * 3600)
# How long a queued run's secret parameters wait in Redis for its job (they are deleted once used).
MLAB_RUN_SECRETS_SECONDS = env.int("MLAB_RUN_SECRETS_SECONDS", default=6 * 3600)

# --- A/B events and results -------------------------------------------------------------------------
# The events door stops appending (503, retried by the SDK) once a scene's stream holds this many batches not yet
# counted: below the stream's MAXLEN (mlab_client.contract.EVENTS_STREAM_MAXLEN), so that trimming never drops any.
MLAB_EVENTS_STREAM_LIMIT = env.int("MLAB_EVENTS_STREAM_LIMIT", default=8_000)
# The most events the server takes in one batch (413 above; never more than the contract's 1,000).
MLAB_EVENTS_MAX_BATCH_EVENTS = env.int("MLAB_EVENTS_MAX_BATCH_EVENTS", default=1_000)
# How long one aggregation job counts before it yields the worker (and asks for another run if entries wait).
MLAB_EVENTS_AGGREGATE_SECONDS = env.float("MLAB_EVENTS_AGGREGATE_SECONDS", default=10.0)
# Batch ids are kept this long to recognise a batch sent again (a retry comes within minutes).
MLAB_EVENTS_BATCH_RETENTION_DAYS = env.int("MLAB_EVENTS_BATCH_RETENTION_DAYS", default=7)
