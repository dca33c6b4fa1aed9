"""Secrets in feed settings (passwords, API keys, tokens): never shown back in admin.

Admin shows settings with every secret replaced by MASK; when the form comes back, each MASK
still in place takes the stored value again, so an operator can edit the URL without
re-typing the password. What counts as a secret is decided by name: a settings key (at any
depth, so a websocket `send` message's `{"apiKey": ...}` counts) or a header name, plus the
password in a URL's user-info and secret-looking query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "••••••••"
_SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?$|secret|token|api[-_]?key|apikey|access[-_]?key|auth|credential|private[-_]?key|"
    r"^key$|signature|cookie|session",
    re.IGNORECASE,
)
# Path expressions and names of things, not secrets, however they are named.
_NOT_SECRET = {"extract", "topics", "events", "series"}


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def mask(settings: Any) -> Any:
    """A copy of `settings` with every secret value replaced by MASK."""
    return _mask(settings)


def _mask(value: Any, name: str = "") -> Any:
    if isinstance(value, Mapping):
        return {key: value[key] if key in _NOT_SECRET else _mask(value[key], str(key)) for key in value}
    if isinstance(value, list):
        return [_mask(item, name) for item in value]
    if isinstance(value, str) and value:
        if name and is_secret_name(name):
            return MASK
        if "://" in value:
            return mask_url(value)
    if name and is_secret_name(name) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return MASK
    return value


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
    # Piece by piece, so what is not a secret keeps its exact spelling.
    pieces = []
    for piece in parts.query.split("&") if parts.query else []:
        key, equals, _ = piece.partition("=")
        pieces.append(f"{key}={MASK}" if equals and is_secret_name(unquote_plus(key)) else piece)
    query = "&".join(pieces)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class MaskedSecretMissing(ValueError):
    """The form kept a MASK where nothing is stored (a new key): the secret must be typed in."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: type the secret in (nothing is stored to keep)")
        self.path = path


def unmask(submitted: Any, stored: Any, *, path: str = "") -> Any:
    """`submitted` with each MASK (or masked URL part) put back from `stored`."""
    if isinstance(submitted, Mapping):
        stored_map = stored if isinstance(stored, Mapping) else {}
        return {
            key: unmask(value, stored_map.get(key), path=f"{path}.{key}" if path else str(key))
            for key, value in submitted.items()
        }
    if isinstance(submitted, list):
        stored_list = stored if isinstance(stored, list) else []
        return [
            unmask(item, stored_list[index] if index < len(stored_list) else None, path=f"{path}[{index}]")
            for index, item in enumerate(submitted)
        ]
    if submitted == MASK:
        if stored is None:
            raise MaskedSecretMissing(path or "settings")
        return stored
    if isinstance(submitted, str) and MASK in submitted and "://" in submitted:
        # A URL shown with its password or key masked: if only the masked parts are unchanged,
        # the stored URL stands; if the operator edited the rest, refuse rather than guess.
        if isinstance(stored, str) and mask_url(stored) == submitted:
            return stored
        raise MaskedSecretMissing(path or "settings")
    return submitted
