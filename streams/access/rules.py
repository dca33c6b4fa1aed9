"""The one answer to "may this user see this stream?" (and this dashboard, and this panel).

Pages, the socket consumer and every later interface ask here, so a rule changes in one place.
Inactive users count as anonymous; active staff and superusers see every stream, even disabled.
Dashboards follow the same visibility rule as streams; a panel shows only to users who may see
every stream on it (a panel drawn with some of its streams missing would mislead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Q

if TYPE_CHECKING:
    from django.db.models import Model

    from streams.models import Dashboard, Panel, Stream


def is_staff(user: Any) -> bool:
    return bool(user is not None and user.is_active and (user.is_staff or user.is_superuser))


def is_signed_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def visibility_filter(user: Any, model: type[Model] | None = None) -> Q:
    """A filter selecting the rows `user` may see, on Stream (the default) or on another model
    with the same visibility, viewers and viewer_groups fields (Dashboard). Disabled rows (a
    model with an `enabled` field) are for staff only."""
    from streams.models import Stream

    model = model or Stream
    if is_staff(user):
        return Q()
    enabled = Q(enabled=True) if any(f.name == "enabled" for f in model._meta.fields) else Q()
    public = Q(visibility=Stream.Visibility.PUBLIC)
    if not is_signed_in(user):
        return enabled & public
    # Subqueries rather than joins so a user in several groups does not duplicate rows.
    column = f"{model._meta.model_name}_id"
    named = model.viewers.through.objects.filter(user_id=user.pk).values(column)
    grouped = model.viewer_groups.through.objects.filter(group__user=user.pk).values(column)
    restricted = Q(visibility=Stream.Visibility.RESTRICTED) & (Q(pk__in=named) | Q(pk__in=grouped))
    return enabled & (public | Q(visibility=Stream.Visibility.SIGNED_IN) | restricted)


def can_view(user: Any, stream: Stream) -> bool:
    from streams.models import Stream

    return Stream.objects.filter(pk=stream.pk).filter(visibility_filter(user)).exists()


def viewable_stream(user: Any, slug: str) -> tuple[Stream | None, bool]:
    """(stream, allowed) for a slug; stream is None when there is no such stream."""
    from streams.models import Stream

    stream = Stream.objects.filter(slug=slug).first()
    if stream is None:
        return None, False
    if allowed_by_row(user, stream):
        return stream, True
    return stream, can_view(user, stream)


def allowed_by_row(user: Any, stream: Stream) -> bool:
    """True when the row alone says `user` may see `stream`: what visibility_filter answers for
    it without a query (staff see every stream; every viewer an enabled public one, a reconnect
    storm's usual subscribe). False means: ask can_view."""
    from streams.models import Stream

    return is_staff(user) or (stream.enabled and stream.visibility == Stream.Visibility.PUBLIC)


def viewable_dashboard(user: Any, slug: str) -> tuple[Dashboard | None, bool]:
    """(dashboard, allowed) for a slug; dashboard is None when there is no such dashboard."""
    from streams.models import Dashboard

    dashboard = Dashboard.objects.filter(slug=slug).first()
    if dashboard is None:
        return None, False
    allowed = Dashboard.objects.filter(pk=dashboard.pk).filter(visibility_filter(user, Dashboard)).exists()
    return dashboard, allowed


def visible_panels(user: Any, panels: list[Panel]) -> tuple[list[Panel], int]:
    """(the panels `user` may see, how many are hidden): a panel shows only when the user may
    see every one of its streams; a panel without streams shows to no one. The panels' `links`
    should be prefetched (with their streams)."""
    from streams.models import Stream

    stream_ids = {link.stream_id for panel in panels for link in panel.links.all()}
    allowed = set(
        Stream.objects.filter(pk__in=stream_ids).filter(visibility_filter(user)).values_list("pk", flat=True)
    )
    shown = [
        panel
        for panel in panels
        if (ids := {link.stream_id for link in panel.links.all()}) and ids <= allowed
    ]
    return shown, len(panels) - len(shown)
