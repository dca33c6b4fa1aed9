"""Real peer for the peers bench: django-eventstream, SSE for Django, under daphne.

    DJANGO_SETTINGS_MODULE=bench.peer_eventstream PEER_REDIS_URL=... \
        daphne -b 127.0.0.1 -p PORT bench.peer_eventstream_asgi:application

The Django settings of a site set up as django-eventstream's README says (its URLs and
application: bench/peer_eventstream_asgi.py): `daphne` and `django_eventstream` in
INSTALLED_APPS, the events view at `/events/<stream>/` (one
eventstream channel per chart), deployed with `daphne project.asgi:application`, and
`EVENTSTREAM_REDIS` so that `send_event` called in another process (the feed,
bench/peer_feed.py: one `send_event(stream, "message", {"n", "t", "y"})` per 50 ms tick)
reaches the viewers (the README's "Multiple instances and scaling"). No
`EVENTSTREAM_STORAGE_CLASS`: events are not stored (the default), so a viewer more than
MAX_PENDING (10) events behind loses the rest, as with the README's basic setup.
django-eventstream 5 serves SSE from an async Django view; it no longer uses a Channels
consumer or channel layer: its cross-process relay is Redis pub/sub (`events_channel`).
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit

_redis = urlsplit(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))

DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_eventstream",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.peer_eventstream_asgi"  # not here: importing django_eventstream reads settings
ASGI_APPLICATION = "bench.peer_eventstream_asgi.application"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
EVENTSTREAM_REDIS = {
    "host": _redis.hostname or "127.0.0.1",
    "port": _redis.port or 6379,
    "db": int(_redis.path.lstrip("/") or 0),
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
