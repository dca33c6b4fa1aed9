"""Baseline (a) for the fan-out bench: the recipe users write today on Channels.

    daphne bench.baseline_asgi:application

One `group_send` per point (bench/publisher.py --protocol point), one JSON frame per point,
encoded per socket by `send_json`, through Channels' ordinary dispatch. The same Django
project, middleware and origin check as livecharts.asgi; only the /ws/ consumer differs.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "livecharts.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402


class PointConsumer(AsyncJsonWebsocketConsumer):
    """The tutorial chart consumer: join the stream's group, forward each point as it comes."""

    async def connect(self) -> None:
        self.groups_joined: list[str] = []
        await self.accept()

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        if content.get("op") == "subscribe":
            group = f"chart.{content['stream']}"
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
            await self.send_json({"op": "subscribed", "stream": content["stream"]})

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def chart_point(self, event: dict) -> None:
        await self.send_json(event["point"])


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/", PointConsumer.as_asgi())]))
        ),
    }
)
