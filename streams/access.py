"""The one answer to "may this user see this stream?".

Pages, the socket consumer and every later interface ask here, so a rule changes in one place.
Inactive users count as anonymous; active staff and superusers see every stream, even disabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Q

if TYPE_CHECKING:
    from streams.models import Stream


def is_staff(user: Any) -> bool:
    return bool(user is not None and user.is_active and (user.is_staff or user.is_superuser))


def is_signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def visibility_filter(user: Any) -> Q:
    """A filter on Stream selecting the streams `user` may see."""
    from streams.models import Stream

    if is_staff(user):
        return Q()
    public = Q(visibility=Stream.Visibility.PUBLIC)
    if not is_signed_in(user):
        return Q(enabled=True) & public
    # Subqueries rather than joins so a user in several groups does not duplicate rows.
    named = Stream.viewers.through.objects.filter(user_id=user.pk).values("stream_id")
    grouped = Stream.viewer_groups.through.objects.filter(group__user=user.pk).values("stream_id")
    restricted = Q(visibility=Stream.Visibility.RESTRICTED) & (Q(pk__in=named) | Q(pk__in=grouped))
    return Q(enabled=True) & (public | Q(visibility=Stream.Visibility.SIGNED_IN) | restricted)


def can_view(user: Any, stream: Stream) -> bool:
    from streams.models import Stream

    return Stream.objects.filter(pk=stream.pk).filter(visibility_filter(user)).exists()


def viewable_stream(user: Any, slug: str) -> tuple[Stream | None, bool]:
    """(stream, allowed) for a slug; stream is None when there is no such stream."""
    from streams.models import Stream

    stream = Stream.objects.filter(slug=slug).first()
    if stream is None:
        return None, False
    return stream, can_view(user, stream)
