"""Django admin for streams: where operators configure feeds, charts and who may watch.

Validation lives on the model (Stream.clean asks the feed kind), so admin and `manage.py provision`
accept and refuse the same settings.
"""

from __future__ import annotations

import contextvars
import json
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from streams.health import stream_statuses
from streams.models import Dashboard, Panel, PushToken, Stream
from streams.probe import probe
from streams.secrets import MaskedSecretMissing, mask, unmask

# The statuses of the change list being rendered (admin row methods get only the row).
_page_statuses: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "page_statuses", default=None
)


class StreamForm(forms.ModelForm):
    """Feed settings are shown with their secrets masked, and a mask left as it is keeps the
    stored secret (streams/secrets.py)."""

    # No Meta: ModelAdmin builds the form class from this one with the model and its fields.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "feed_settings" in self.fields:
            self.initial["feed_settings"] = mask(self.instance.feed_settings)

    def clean_feed_settings(self) -> Any:
        submitted = self.cleaned_data.get("feed_settings")
        stored = Stream.objects.filter(pk=self.instance.pk).values_list("feed_settings", flat=True).first()
        try:
            return unmask(submitted, stored)
        except MaskedSecretMissing as missing:
            raise forms.ValidationError(str(missing)) from None


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    form = StreamForm
    change_form_template = "admin/streams/stream/change_form.html"
    list_display = ("title", "slug", "kind", "feed_state", "last_point", "counters", "visibility", "enabled")
    list_filter = ("enabled", "visibility", "feed_kind", "chart_type")
    search_fields = ("title", "slug", "description")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("viewers", "viewer_groups")
    readonly_fields = ("created", "updated")
    actions = ("enable_streams", "disable_streams")
    fieldsets = (
        ("Stream", {"fields": ("title", "slug", "description", "enabled")}),
        (
            "Feed",
            {
                "fields": ("feed_kind", "feed_settings"),
                "description": "Settings are JSON; keys left out take the feed kind's defaults.",
            },
        ),
        ("Chart", {"fields": ("chart_type", ("window_points", "window_seconds"), ("y_title", "y_unit"))}),
        (
            "Stored points",
            {
                "fields": ("store_points", ("keep_seconds", "keep_points")),
                "description": "Points kept in the database for range views, export and restarts, "
                "pruned in the background beyond these limits.",
            },
        ),
        (
            "Access",
            {
                "fields": ("visibility", "viewers", "viewer_groups"),
                "description": "Viewers and groups apply to restricted streams; staff see every stream.",
            },
        ),
        ("History", {"fields": ("created", "updated"), "classes": ("collapse",)}),
    )
    formfield_overrides = {
        models.JSONField: {
            "widget": forms.Textarea(
                attrs={"rows": 14, "cols": 80, "class": "vLargeTextField", "style": "font-family: monospace"}
            )
        },
    }

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # One read of every stream's status for the whole page, not one per row.
        slugs = Stream.objects.values_list("slug", flat=True)
        token = _page_statuses.set(stream_statuses(list(slugs)))
        try:
            response = super().changelist_view(request, extra_context)
            # Rows are rendered when the response is, so render while the statuses are set.
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _page_statuses.reset(token)

    def _status(self, stream: Stream) -> dict[str, Any]:
        return (_page_statuses.get() or {}).get(stream.slug, {})

    @admin.display(description="Feed")
    def feed_state(self, stream: Stream) -> str:
        status = self._status(stream)
        state = status.get("state", "unknown") if stream.enabled else "disabled"
        colours = {"live": "#15803d", "stalled": "#a16207", "connecting": "#a16207", "error": "#b91c1c"}
        error = status.get("error") if state == "error" else None
        return format_html(
            '<span style="color:{};font-weight:600" title="{}">{}</span>',
            colours.get(state, "#475569"),
            error or "",
            state,
        )

    @admin.display(description="Last point")
    def last_point(self, stream: Stream) -> str:
        return self._status(stream).get("last_point_label", "—")

    @admin.display(description="Kind", ordering="feed_kind")
    def kind(self, stream: Stream) -> str:
        return stream.feed_kind

    @admin.display(description="Points · bad · reconnects")
    def counters(self, stream: Stream) -> str:
        status = self._status(stream)
        if "points" not in status:
            return "—"
        return " · ".join(f"{status.get(key) or 0:,}" for key in ("points", "bad_payloads", "reconnects"))

    def get_urls(self) -> list[URLPattern]:
        test_feed = self.admin_site.admin_view(self.test_feed_view)
        return [
            path("<int:object_id>/test-feed/", test_feed, name="streams_stream_test_feed"),
            *super().get_urls(),
        ]

    def test_feed_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Connect once with the saved settings; show the first points or the error."""
        stream = get_object_or_404(Stream, pk=object_id)
        if not self.has_change_permission(request, stream):
            raise PermissionError("no permission to change this stream")
        result = None
        if stream.feed_kind != "push":
            result = async_to_sync(probe)(stream.feed_kind, stream.feed_settings)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": stream,
            "title": f"Test the feed of “{stream.title}”",
            "stream": stream,
            "result": result,
            "settings_json": json.dumps(mask(stream.feed_settings), indent=2),
            "push_url": request.build_absolute_uri(reverse("push-points", args=[stream.slug])),
        }
        return TemplateResponse(request, "admin/streams/stream/test_feed.html", context)

    def get_fieldsets(self, request: HttpRequest, obj: Stream | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        # A stream being added has no history yet.
        return fieldsets if obj is not None else [fs for fs in fieldsets if fs[0] != "History"]

    @admin.action(description="Enable the selected streams")
    def enable_streams(self, request: HttpRequest, queryset: QuerySet[Stream]) -> None:
        self._set_enabled(request, queryset, enabled=True)

    @admin.action(description="Disable the selected streams")
    def disable_streams(self, request: HttpRequest, queryset: QuerySet[Stream]) -> None:
        self._set_enabled(request, queryset, enabled=False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Stream], *, enabled: bool) -> None:
        # update() skips auto_now, so `updated` is set by hand: it records the last change.
        count = queryset.exclude(enabled=enabled).update(enabled=enabled, updated=timezone.now())
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{count} stream{'s' if count != 1 else ''} {state}.", messages.SUCCESS)


@admin.register(PushToken)
class PushTokenAdmin(admin.ModelAdmin):
    """Tokens are made here and shown once, in the message after saving; only a hash is kept."""

    list_display = ("name", "prefix", "stream_list", "created", "last_used", "is_active")
    list_filter = (("revoked", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    filter_horizontal = ("streams",)
    readonly_fields = ("prefix", "created", "last_used", "revoked")
    actions = ("revoke_tokens",)

    @admin.display(description="Streams")
    def stream_list(self, token: PushToken) -> str:
        return ", ".join(stream.slug for stream in token.streams.all()) or "—"

    @admin.display(description="Active", boolean=True)
    def is_active(self, token: PushToken) -> bool:
        return token.is_active

    def get_queryset(self, request: HttpRequest) -> QuerySet[PushToken]:
        return super().get_queryset(request).prefetch_related("streams")

    def get_fields(self, request: HttpRequest, obj: PushToken | None = None) -> Any:
        return ("name", "streams") if obj is None else ("name", "streams", *self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: PushToken, form: Any, change: bool) -> None:
        token = None if change else obj.issue()
        super().save_model(request, obj, form, change)
        if token is not None:
            self.message_user(
                request,
                f"The token for “{obj.name}” is {token} — copy it now: it is stored hashed and will "
                "not be shown again. Send it as `Authorization: Bearer <token>`.",
                messages.WARNING,
            )

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[PushToken]) -> None:
        count = queryset.filter(revoked__isnull=True).update(revoked=timezone.now())
        self.message_user(request, f"{count} token{'s' if count != 1 else ''} revoked.", messages.SUCCESS)


class WrappedFilteredSelectMultiple(FilteredSelectMultiple):
    """FilteredSelectMultiple in its own box, as admin wraps a model's many-to-many widgets:
    SelectFilter2.js puts the selector first in the select's parent, which would otherwise be
    the form row, and the field's label would end up after the widget."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        return format_html('<div class="related-widget-wrapper">{}</div>', super().render(*args, **kwargs))


class PanelForm(forms.ModelForm):
    """A panel with its streams. The streams go through PanelStream, in order: streams already
    on the panel keep their places and newly chosen ones go last (a multiple select sends its
    choices in list order, not in the order they were picked)."""

    # Not named `streams`: admin refuses a many-to-many field with its own through model (E013),
    # so this form field stands in for it and is saved by hand.
    panel_streams = forms.ModelMultipleChoiceField(
        label="Streams",
        queryset=Stream.objects.all(),
        widget=WrappedFilteredSelectMultiple("streams", is_stacked=False),
        help_text="Traces follow this order: streams already on the panel first, new ones after.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["panel_streams"] = [stream.pk for stream in self.instance.ordered_streams()]

    def _post_clean(self) -> None:
        super()._post_clean()  # the instance holds the submitted chart type and series from here
        streams = self.cleaned_data.get("panel_streams")
        if streams is None or self.has_error("chart_type") or self.has_error("series"):
            return
        try:
            self.instance.clean_streams(self._ordered(streams))
        except forms.ValidationError as error:
            for field, messages in error.message_dict.items():
                self.add_error("panel_streams" if field == "streams" else field, messages)

    def _ordered(self, chosen: Any) -> list[Stream]:
        current = self.instance.ordered_streams() if self.instance.pk else []
        chosen = list(chosen)
        return [s for s in current if s in chosen] + [s for s in chosen if s not in current]

    def _save_m2m(self) -> None:
        super()._save_m2m()
        self.instance.set_streams(self._ordered(self.cleaned_data["panel_streams"]))


class PanelInline(admin.StackedInline):
    model = Panel
    form = PanelForm
    extra = 0
    ordering = ("position", "pk")
    fields = (
        ("position", "title"),
        ("chart_type", "series"),
        "panel_streams",
        ("width", "height"),
        "candle_seconds",
        ("gauge_min", "gauge_max"),
    )


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "visibility", "panel_count", "view_link")
    list_filter = ("visibility",)
    search_fields = ("title", "slug", "description")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("viewers", "viewer_groups")
    readonly_fields = ("created", "updated")
    inlines = (PanelInline,)
    fieldsets = (
        ("Dashboard", {"fields": ("title", "slug", "description", "columns")}),
        (
            "Access",
            {
                "fields": ("visibility", "viewers", "viewer_groups"),
                "description": "Who may open the dashboard (viewers and groups apply when restricted; "
                "staff see all). Each panel then shows only to those who may see all of its streams.",
            },
        ),
        ("History", {"fields": ("created", "updated"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dashboard]:
        return super().get_queryset(request).annotate(panels_total=models.Count("panels"))

    @admin.display(description="Panels", ordering="panels_total")
    def panel_count(self, dashboard: Dashboard) -> int:
        return dashboard.panels_total  # type: ignore[attr-defined]

    @admin.display(description="")
    def view_link(self, dashboard: Dashboard) -> str:
        return format_html('<a href="{}">View dashboard</a>', dashboard.get_absolute_url())

    def get_fieldsets(self, request: HttpRequest, obj: Dashboard | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is not None else [fs for fs in fieldsets if fs[0] != "History"]
