"""What an HTTP source said when it refused us, quoted safely in an error message: the start
of its answer, on one line, with the secrets we sent blanked out (servers do quote a refused
key back). Shared by the poll and SSE kinds."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

import httpx

# How much of an error answer's body goes into the error message ("Invalid API-key").
ERROR_BODY_CHARS = 200
# Secrets shorter than this are not looked for in error text: they would blank out
# ordinary words and numbers, and a key that short protects nothing anyway.
MIN_SECRET_CHARS = 4


async def error_body(response: httpx.Response, *, url: str, headers: Mapping[str, str]) -> str:
    """The start of an error answer, on one line, redacted."""
    text = " ".join((await _body_start(response)).split())
    return redact(text, url=url, headers=headers)


def redact(text: str, *, url: str, headers: Mapping[str, str]) -> str:
    """`text` with the header values, URL credentials and query values the caller sent blanked
    out, for error messages that quote what a server or library said."""
    parts = urlsplit(url)
    secrets = [value for _, value in parse_qsl(parts.query)] + [parts.username or "", parts.password or ""]
    for value in headers.values():
        # "Bearer abc123": a server may echo the token alone.
        secrets += [value, *value.split()]
    # Longest first, so a secret holding a shorter one is blanked whole.
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


async def _body_start(response: httpx.Response) -> str:
    # Read only the start: a wrong answer may itself be an endless stream.
    collected = b""
    try:
        async for chunk in response.aiter_bytes():
            collected += chunk
            if len(collected) >= ERROR_BODY_CHARS:
                break
    except httpx.HTTPError:
        pass
    return collected[:ERROR_BODY_CHARS].decode("utf-8", errors="replace")
