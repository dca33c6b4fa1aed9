"""ASGI entry point: HTTP through Django, /ws/ through the stream consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecharts.settings")
# Django must be set up before anything imports models (the routing below does).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from streams.core.collector import tune_gc  # noqa: E402
from streams.delivery.handshake import (  # noqa: E402
    allowed_hosts_origin_validator,
    lazy_autobahn_debug,
    raise_listen_backlog,
    socket_auth_stack,
)
from streams.routing import websocket_urlpatterns  # noqa: E402

# daphne's handshake pays for a debug line nobody logs, and its ports queue only 50 connections
# (streams/delivery/handshake.py): daphne imports this module before it listens.
lazy_autobahn_debug()
raise_listen_backlog()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": allowed_hosts_origin_validator(socket_auth_stack(URLRouter(websocket_urlpatterns))),
    }
)
# Last: what the imports above built is frozen out of the garbage collector's full collections,
# and a connection's few hundred containers (Twisted's, autobahn's, the ASGI instance, the
# consumer) mostly die young rather than being walked by full collections while a reconnect
# storm builds them up (streams/core/collector.py).
DAPHNE_GC_YOUNG_THRESHOLD = 50_000
tune_gc(DAPHNE_GC_YOUNG_THRESHOLD)
