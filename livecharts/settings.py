"""LiveCharts settings: everything from the environment, safe defaults for the embedded mode.

Every variable read here is listed in .env.example.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import plotly
from django.core.exceptions import ImproperlyConfigured

from livecharts.env import envbool, envint, envlist, envstr
from streams.storage.redis_clients import RedisAddressError, layer_host, split_addresses
from streams.storage.redis_clients import parse_address as parse_redis_address

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = envbool("DEBUG", True)
SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Only for the embedded laptop mode; production refuses to start without a real key.
    SECRET_KEY = "django-insecure-livecharts-embedded-mode-only"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "streams",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Scripts from our origin only, none inline (livecharts/csp.py says what pages need).
    "livecharts.csp.ContentSecurityPolicyMiddleware",
    # /healthz, /readyz and a token-bearing /metrics answer whatever the Host, before
    # CommonMiddleware checks it (livecharts/probes.py); their paths skip the https redirect.
    "livecharts.probes.ProbeMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "livecharts.urls"
ASGI_APPLICATION = "livecharts.asgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode writes points from the feed side while people save in admin; SQLite
    # has one writer at a time, and an admin save must never fail with "database is locked":
    # - WAL: readers never wait for the writer, nor it for them (the mode is kept in the file).
    # - IMMEDIATE: a transaction takes the write lock at BEGIN, where the busy timeout waits
    #   for it. A DEFERRED one that reads first and then writes gets SQLITE_BUSY at once, with
    #   no wait, when another writer got there between (SQLite cannot wait without deadlock).
    # - timeout: how long a writer waits for the lock before giving up (writes here are short).
    # - synchronous=NORMAL: safe with WAL (a power cut may lose the last commits, never the file).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: when set, the channel layer and the history window live there (production mode).
REDIS_URL = envstr("REDIS_URL")
# Keys and channels are prefixed so several installs (or test runs) can share one Redis.
LIVECHARTS_REDIS_PREFIX = envstr("LIVECHARTS_REDIS_PREFIX", "livecharts")

if REDIS_URL:
    # RedisPubSubChannelLayer: one PUBLISH per group_send, fanned out inside each process.
    # Measured on this machine kind (DESIGN.md) at ~7x the sends/s of RedisChannelLayer, which
    # also drops silently past its per-channel capacity.
    # LIVECHARTS_CHANNEL_LAYER=core picks RedisChannelLayer instead, for bench/ to compare.
    _LAYERS = {
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }
    if envstr("LIVECHARTS_CHANNEL_LAYER", "pubsub") not in _LAYERS:
        raise ImproperlyConfigured("LIVECHARTS_CHANNEL_LAYER must be pubsub or core")
    # Shards of the layer: channels-redis hashes each group's channel to one of these, the same
    # way in every process (so every process must list the same URLs in the same order). The
    # history windows, leases and push inboxes stay on REDIS_URL.
    # Comma-separated; a comma inside a Sentinel address (its hosts) does not split the list.
    LIVECHARTS_LAYER_REDIS_URLS = split_addresses(envstr("LIVECHARTS_LAYER_REDIS_URLS") or REDIS_URL)
    # Plain URLs, or redis+sentinel://host:26379,host:26379/<service>/<db> for a master that
    # Sentinel fails over (streams/storage/redis_clients.py); channels-redis takes either.
    try:
        parse_redis_address(REDIS_URL)
        _LAYER_HOSTS = [layer_host(_url) for _url in LIVECHARTS_LAYER_REDIS_URLS]
    except RedisAddressError as _error:
        raise ImproperlyConfigured(f"REDIS_URL / LIVECHARTS_LAYER_REDIS_URLS: {_error}") from None
    # A push is answered 202 once this many replicas hold it (1 under Sentinel: a failover
    # must not lose what a pusher was told is kept); 0 with one plain Redis.
    LIVECHARTS_REDIS_ACK_REPLICAS = envint(
        "LIVECHARTS_REDIS_ACK_REPLICAS",
        0 if isinstance(parse_redis_address(REDIS_URL), str) else 1,
        minimum=0,
    )
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _LAYERS[envstr("LIVECHARTS_CHANNEL_LAYER", "pubsub")],
            "CONFIG": {
                "hosts": _LAYER_HOSTS,
                "prefix": f"{LIVECHARTS_REDIS_PREFIX}:asgi",
            },
        }
    }
else:
    LIVECHARTS_REDIS_ACK_REPLICAS = 0
    # Only for the one-process `manage.py serve`; `manage.py ingest` refuses it.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Points are coalesced per stream per tick; one frame per socket per tick at most.
LIVECHARTS_TICK_MS = envint("LIVECHARTS_TICK_MS", 50, minimum=5)
# A socket whose client stops reading: bytes held for it before it gets nothing more, and
# seconds it may stay that far behind before it is closed (4008) to back-fill later.
LIVECHARTS_SEND_BUDGET_BYTES = envint("LIVECHARTS_SEND_BUDGET_BYTES", 512 * 1024, minimum=16 * 1024)
LIVECHARTS_SLOW_READER_SECONDS = envint("LIVECHARTS_SLOW_READER_SECONDS", 10, minimum=1)
# A backfill (a page opening, a resume) goes out in frames of at most this many bytes, chained
# by `prev`: daphne refuses a message over 1 MiB, and a slow reader's budget is kept between them.
LIVECHARTS_BACKFILL_FRAME_BYTES = envint("LIVECHARTS_BACKFILL_FRAME_BYTES", 256 * 1024, minimum=16 * 1024)
if LIVECHARTS_BACKFILL_FRAME_BYTES > 1024 * 1024:
    raise ImproperlyConfigured(
        f"LIVECHARTS_BACKFILL_FRAME_BYTES={LIVECHARTS_BACKFILL_FRAME_BYTES} must be at most 1048576"
        " (daphne closes a socket sent a larger message)"
    )
# Open sockets per client address in one process, signed in or not (one more is closed, 4029).
LIVECHARTS_MAX_SOCKETS_PER_ADDRESS = envint("LIVECHARTS_MAX_SOCKETS_PER_ADDRESS", 100, minimum=1)
# Proxies in front of daphne that append the address they saw to X-Forwarded-For (the
# documented nginx: 1). The client address is then that header's entry this far from the
# right; entries further left are whatever the client wrote. 0: the TCP peer's address.
LIVECHARTS_TRUSTED_PROXY_HOPS = envint("LIVECHARTS_TRUSTED_PROXY_HOPS", 0, minimum=0)
# GET /metrics (Prometheus) answers staff, and a scraper sending "Authorization: Bearer <this>".
LIVECHARTS_METRICS_TOKEN = envstr("LIVECHARTS_METRICS_TOKEN")

# Write broadcast points to the database (per stream: Stream.store_points); off for a
# process that must never touch the database with points (benchmarks).
LIVECHARTS_STORE_POINTS = envbool("LIVECHARTS_STORE_POINTS", True)
# Seconds between prunes of stored points beyond each stream's keep_seconds / keep_points.
LIVECHARTS_PRUNE_SECONDS = envint("LIVECHARTS_PRUNE_SECONDS", 60, minimum=1)

# A point dated more than this many seconds ahead of the receiving clock is a bad payload
# (counted and dropped; the push API answers 400): a wrong time unit or a local time sent as
# UTC, which would otherwise hold back every later point of its series (streams/ingest/feeds/timeline.py).
LIVECHARTS_MAX_FUTURE_SECONDS = envint("LIVECHARTS_MAX_FUTURE_SECONDS", 300, minimum=0)

# The push API (POST /api/streams/<slug>/points): body size, points a request, and requests a
# second per token (bursts of twice that), per daphne process.
LIVECHARTS_PUSH_MAX_BYTES = envint("LIVECHARTS_PUSH_MAX_BYTES", 1024 * 1024, minimum=1024)
LIVECHARTS_PUSH_MAX_POINTS = envint("LIVECHARTS_PUSH_MAX_POINTS", 10_000, minimum=1)
LIVECHARTS_PUSH_RATE = envint("LIVECHARTS_PUSH_RATE", 20, minimum=1)

# Feeds may reach loopback, private and link-local addresses (a broker on the same machine or
# LAN) only when this is on: off in production, so a feed URL typed into admin cannot read the
# cloud metadata service or an internal service (streams/ingest/netguard.py). On for the laptop demo
# (DEBUG) and the tests, whose sources all listen on 127.0.0.1.
LIVECHARTS_ALLOW_PRIVATE_FEEDS = envbool("LIVECHARTS_ALLOW_PRIVATE_FEEDS", DEBUG)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "stream-list"
LOGOUT_REDIRECT_URL = "stream-list"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# plotly.min.js comes from the installed plotly package, so pages work with no CDN.
STATICFILES_DIRS = [("plotly", Path(plotly.__file__).parent / "package_data")]
# Serve straight from the finders: no collectstatic step for the embedded mode.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Production hardening (manage.py check --deploy is clean with DEBUG off).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers and supervisors probe these, and Prometheus scrapes each process's /metrics,
# over plain HTTP on the daphne port (a redirect would send them to HTTPS daphne does not speak).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # One line per event, and a flood of one warning held to a line per 10 s (livecharts/logfilters.py).
    "filters": {
        "one_line": {"()": "livecharts.logfilters.OneLine"},
        "repeats": {"()": "livecharts.logfilters.Repeats", "seconds": 10},
        "listening_only": {"()": "livecharts.logfilters.ListeningOnly"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["one_line", "repeats"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        # ...but its "Listening on TCP address" line, so a log says when a process is serving.
        "daphne.server": {"level": "INFO", "filters": ["listening_only"]},
        "django.channels.server": {"level": "WARNING"},
        # httpx logs each request's full URL at INFO, query string (API keys) included.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # websockets logs handshake headers at DEBUG; paho (under aiomqtt) logs packets.
        "websockets": {"level": "WARNING"},
    },
}
