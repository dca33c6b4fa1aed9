"""A tiny ASGI app for tests/e2e/test_direct_writes.py: tells the client whether daphne's
socket got a direct writer (streams/delivery/transport.py), or which internal it lacked."""

from __future__ import annotations

from typing import Any


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    from streams.delivery.transport import direct_writer, missing_internals

    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    writer = direct_writer(send)
    if writer is None:
        protocol = send.args[0] if hasattr(send, "args") and send.args else None
        text = f"plain: {missing_internals(protocol) if protocol is not None else 'no protocol'}"
        await send({"type": "websocket.send", "text": text})
    else:
        await send({"type": "websocket.send", "text": "direct"})
        from streams.delivery.transport import prepare

        writer.write(prepare("framed once"))
    while (await receive())["type"] != "websocket.disconnect":
        pass
