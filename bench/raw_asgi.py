"""Baseline (b) for the fan-out bench: the raw stack with no LiveCharts logic.

    daphne bench.raw_asgi:application

daphne, the same channel layer and middleware as livecharts.asgi, and a bare
AsyncWebsocketConsumer that joins a group and forwards each message's pre-encoded text as one
frame. bench/publisher.py --protocol raw feeds it one `group_send` per stream per tick, the
text already a LiveCharts `points` frame, so the viewers read it like ours. No access checks,
no history, no coalescing across streams: what LiveCharts costs on top is the difference.
"""

from __future__ import annotations

import json
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecharts.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402


class RawConsumer(AsyncWebsocketConsumer):
    """Join `raw.<stream>` on subscribe; send every frame text given, unchanged."""

    async def connect(self) -> None:
        self.groups_joined: list[str] = []
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        request = json.loads(text_data or "{}")
        if request.get("op") == "subscribe" and request.get("after") is None:
            group = f"raw.{request['stream']}"
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
            await self.send(text_data=json.dumps({"op": "subscribed", "stream": request["stream"]}))

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def raw_frame(self, event: dict) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/", RawConsumer.as_asgi())]))
        ),
    }
)
