"""Channel-layer group names: the one place broadcast and delivery agree on them."""


def group_name(slug: str) -> str:
    """The channel-layer group of a stream's viewers (slugs are [-a-zA-Z0-9_], all allowed)."""
    return f"stream.{slug}"
