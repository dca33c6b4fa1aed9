"""Django admin for streams: where operators configure feeds, charts and who may watch.

Validation lives on the model (Stream.clean asks the feed kind), so admin and `manage.py provision`
accept and refuse the same settings.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from streams.models import PushToken, Stream


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "feed_kind", "chart_type", "visibility", "enabled")
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
