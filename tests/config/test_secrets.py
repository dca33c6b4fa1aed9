"""Secrets in feed settings are masked for admin and kept when the mask comes back unchanged."""

from __future__ import annotations

import pytest

from streams.config.secrets import MASK, MaskedSecretMissing, mask, mask_url, unmask

STORED = {
    "host": "broker.local",
    "username": "plc",
    "password": "s3cret-pw",
    "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k-123", "Accept": "application/json"},
    "url": "wss://user:pa55@feed.example/stream?symbol=BTC&api_key=q-789",
    "send": [{"op": "auth", "apiKey": "sub-456"}, "155-questions-active"],
    "extract": {"value": "token_count", "series_path": "secret_name"},
    "topics": ["auth/+/tokens"],
}


def test_every_secret_is_masked_and_nothing_else():
    shown = mask(STORED)
    assert shown["password"] == MASK
    assert shown["headers"] == {"Authorization": MASK, "X-Api-Key": MASK, "Accept": "application/json"}
    assert shown["url"] == f"wss://user:{MASK}@feed.example/stream?symbol=BTC&api_key={MASK}"
    assert shown["send"] == [{"op": "auth", "apiKey": MASK}, "155-questions-active"]
    # Paths and topic filters are not secrets, whatever words they contain.
    assert shown["extract"] == STORED["extract"] and shown["topics"] == STORED["topics"]
    assert shown["host"] == "broker.local" and shown["username"] == "plc"
    for secret in ("s3cret-pw", "Bearer abc", "k-123", "pa55", "q-789", "sub-456"):
        assert secret not in repr(shown)


def test_an_unchanged_mask_keeps_the_stored_secret_and_other_edits_apply():
    edited = mask(STORED)
    edited["host"] = "broker2.local"
    assert unmask(edited, STORED) == {**STORED, "host": "broker2.local"}


def test_a_new_secret_replaces_the_stored_one():
    edited = mask(STORED)
    edited["password"] = "new-pw"
    assert unmask(edited, STORED)["password"] == "new-pw"


def test_a_mask_with_nothing_stored_behind_it_asks_for_the_secret():
    with pytest.raises(MaskedSecretMissing, match="token: type the secret in"):
        unmask({"token": MASK}, {})
    # A masked URL whose visible parts were edited cannot be completed by guessing.
    edited = mask(STORED)
    edited["url"] = edited["url"].replace("feed.example", "other.example")
    with pytest.raises(MaskedSecretMissing, match="url"):
        unmask(edited, STORED)


def test_urls_without_secrets_are_shown_as_they_are():
    assert (
        mask_url("https://api.example/v1/candles?symbol=BTC") == "https://api.example/v1/candles?symbol=BTC"
    )
