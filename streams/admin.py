"""Django admin for streams: where operators configure feeds, charts and who may watch.

Validation lives on the model (Stream.clean asks the feed kind), so admin and `manage.py provision`
accept and refuse the same settings; admin checks them first with the kind's settings table
(streams/ingest/feeds/schema.py) to say what is wrong in words, and saves them as typed, not with every
default filled in (the kind fills them in again whenever the feed is built).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms import Script
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from streams.config.feed_trial import probe
from streams.config.secrets import MaskedSecretMissing, mask, unmask
from streams.ingest.feed_health import stream_statuses
from streams.ingest.feeds import FEED_KINDS, clean_feed_settings
from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.schema import SCHEMAS, explain, missing_required
from streams.models import Dashboard, Panel, PushToken, Stream

admin.site.site_header = "LiveCharts administration"
admin.site.site_title = "LiveCharts admin"
admin.site.index_title = "Streams, dashboards and push tokens"
# Five models: the breadcrumbs are enough, and its 300 px go to forms and the change list's columns.
admin.site.enable_nav_sidebar = False

DOCS = Path(__file__).resolve().parent.parent / "docs" / "feeds"
# An ES module (it imports duration.js, which node's test runner checks too).
FORMS_JS = Script("streams/admin/forms.js", type="module")

# The statuses of the change list being rendered (admin row methods get only the row).
_page_statuses: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "page_statuses", default=None
)


def duration_words(seconds: float | None) -> str:
    """2592000 -> "30 days", 5400 -> "1 hour 30 minutes": the two largest units, in words.
    streams/static/streams/admin/forms.js says it the same way as the value is typed."""
    if seconds is None or seconds < 0:
        return ""
    seconds = int(seconds)
    if seconds == 0:
        return "0 seconds"
    parts = []
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count:,} {name}{'s' if count != 1 else ''}")
    return " ".join(parts[:2])


def _width(value: Any, *, least: int) -> str:
    # Wide enough for every digit of the value (and the browser's spin buttons).
    digits = len(str(value)) if value not in (None, "") else 0
    return f"width: {max(least, digits) + 4}ch"


class SizedNumberInput(forms.NumberInput):
    """A number input as wide as its value (admin's own is 5 em: 2592000 showed as 259200)."""

    least = 6

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        attrs = {**(attrs or {}), "class": "lc-number", "style": _width(value, least=self.least)}
        return super().get_context(name, value, attrs)


class SecondsInput(SizedNumberInput):
    """A number of seconds, with the duration in words beside it."""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> str:
        field = super().render(name, value, attrs, renderer)
        try:
            words = duration_words(float(value)) if value not in (None, "") else ""
        except (TypeError, ValueError):
            words = ""
        return format_html('{}<span class="lc-duration" aria-live="polite">{}</span>', field, words)


class FeedSettingsWidget(forms.Textarea):
    """The settings box, and beside it the table of the chosen kind's keys (every kind's table is
    rendered; forms.js shows the one the kind selector names)."""

    # template_name stays Textarea's: the form renderer draws the box, this template the rest.
    wrapper_template = "admin/streams/stream/feed_settings_widget.html"
    kind = "simulate"

    def __init__(self) -> None:
        super().__init__(
            attrs={"rows": 14, "cols": 80, "class": "vLargeTextField lc-json", "spellcheck": "false"}
        )

    test_url = ""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> str:
        # The project's template engine (the form renderer's sees app templates only).
        context = self.get_context(name, value, attrs)
        context["textarea"] = super().render(name, value, attrs, renderer)
        return render_to_string(self.wrapper_template, context)

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["test_url"] = self.test_url
        context["kinds"] = [
            {
                "schema": schema,
                "label": FEED_KINDS[kind].label,
                "docs_url": reverse("admin:streams_stream_feed_docs", args=[kind]),
                "shown": kind == self.kind,
            }
            for kind, schema in SCHEMAS.items()
        ]
        context["starters"] = {
            kind: json.dumps(schema.starter(), indent=2, ensure_ascii=False)
            for kind, schema in SCHEMAS.items()
        }
        return context


class FeedSettingsField(forms.JSONField):
    """JSON as typed: shown pretty-printed, an empty box means {}, and a syntax error says where."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return {}
        try:
            return super().to_python(value)
        except ValidationError:
            try:
                json.loads(value)
            except json.JSONDecodeError as error:
                reason = error.msg[0].lower() + error.msg[1:]
                raise ValidationError(
                    f"Not valid JSON: {reason} at line {error.lineno}, column {error.colno}.", code="invalid"
                ) from None
            raise

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)


SECONDS_FIELDS = {"window_seconds", "keep_seconds", "candle_seconds"}


def _formfield(db_field: models.Field, request: HttpRequest, default: Any, **kwargs: Any) -> Any:
    """Admin's form field for a model field, with LiveCharts' widgets: the feed settings editor,
    durations in words, number inputs as wide as their values."""
    if db_field.name == "feed_settings":
        kwargs.update(form_class=FeedSettingsField, widget=FeedSettingsWidget())
    elif db_field.name == "description":
        kwargs["widget"] = forms.Textarea(attrs={"rows": 3, "cols": 80, "class": "vLargeTextField"})
    elif db_field.name in SECONDS_FIELDS:
        kwargs["widget"] = SecondsInput()
    elif isinstance(db_field, (models.IntegerField, models.FloatField)) and not db_field.choices:
        kwargs["widget"] = SizedNumberInput()
    return default(db_field, request, **kwargs)


def as_typed(stream: Stream) -> Any:
    """The stream's settings in the key order they were typed in, while the text kept from admin
    still reads as the stored settings (else as stored: provision or a script changed them)."""
    if stream.feed_settings_text:
        try:
            typed = json.loads(stream.feed_settings_text)
        except ValueError:
            return stream.feed_settings
        if typed == stream.feed_settings:
            return typed
    return stream.feed_settings


def feed_settings_problem(kind: str, settings: Any) -> str | None:
    """What is wrong with these settings for this kind, in words (None: nothing). Looks the hosts
    up as saving does (streams/ingest/netguard.py): a private address is refused here too."""
    if not isinstance(settings, Mapping):
        shown = {
            "list": "a list",
            "str": "text",
            "int": "a number",
            "float": "a number",
            "bool": "true or false",
        }
        return f"settings must be a JSON object ({{...}}), not {shown.get(type(settings).__name__, 'null')}"
    error = missing_required(kind, settings)
    if error is None:
        try:
            clean_feed_settings(kind, settings)
        except FeedSettingsError as refused:
            error = refused
    return None if error is None else explain(error)


class StreamForm(forms.ModelForm):
    """Feed settings are shown with their secrets masked, and a mask left as it is keeps the
    stored secret (streams/config/secrets.py). They are saved as typed: the kind's defaults are not
    written into them."""

    # No Meta: ModelAdmin builds the form class from this one with the model and its fields.

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "feed_settings" not in self.fields:
            return
        if self.instance.pk:
            self.initial["feed_settings"] = mask(as_typed(self.instance))
        widget = self.fields["feed_settings"].widget
        if isinstance(widget, FeedSettingsWidget):
            kind = self.data.get("feed_kind") if self.is_bound else None
            widget.kind = kind or self.initial.get("feed_kind") or self.instance.feed_kind
            name = (
                "admin:streams_stream_test_feed"
                if self.instance.pk
                else "admin:streams_stream_test_unsaved_feed"
            )
            widget.test_url = reverse(name, args=[self.instance.pk] if self.instance.pk else [])

    def clean_feed_settings(self) -> Any:
        submitted = self.cleaned_data.get("feed_settings")
        stored = Stream.objects.filter(pk=self.instance.pk).values_list("feed_settings", flat=True).first()
        try:
            return unmask(submitted, stored)
        except MaskedSecretMissing as missing:
            raise forms.ValidationError(str(missing)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind, settings = cleaned.get("feed_kind"), cleaned.get("feed_settings")
        if kind is not None and "feed_settings" in cleaned:
            problem = feed_settings_problem(kind, settings)
            if problem is not None:
                self.add_error("feed_settings", problem)
        return cleaned

    def _update_errors(self, errors: ValidationError) -> None:
        # The form has checked the feed settings already, in words (clean above) or as JSON:
        # the model's check of the same settings would only say it a second time.
        if hasattr(errors, "error_dict"):
            errors.error_dict.pop("feed_settings", None)
            if not errors.error_dict:
                return
        super()._update_errors(errors)

    def _post_clean(self) -> None:
        super()._post_clean()
        # Stream.clean stored the settings with the kind's defaults filled in: keep them as typed,
        # and their key order too (json.loads keeps it; PostgreSQL's jsonb would not).
        if "feed_settings" in self.cleaned_data:
            typed = self.cleaned_data["feed_settings"]
            self.instance.feed_settings = typed
            self.instance.feed_settings_text = json.dumps(typed, ensure_ascii=False)


@admin.register(Stream)
class StreamAdmin(admin.ModelAdmin):
    form = StreamForm
    change_form_template = "admin/streams/stream/change_form.html"
    list_display = (
        "title",
        "slug",
        "kind",
        "feed_state",
        "last_point",
        "counters",
        "visibility_short",
        "enabled",
    )
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
                "description": "Settings are JSON, kept as you type them; keys left out take the "
                "feed kind's defaults, listed beside the box.",
            },
        ),
        (
            "Chart",
            {
                "fields": (
                    "chart_type",
                    ("window_points", "window_seconds"),
                    ("y_title", "y_unit"),
                    ("decimals", "area_fill"),
                )
            },
        ),
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

    class Media:
        css = {"all": ("streams/admin/admin.css",)}
        js = (FORMS_JS,)

    def formfield_for_dbfield(self, db_field: models.Field, request: HttpRequest, **kwargs: Any) -> Any:
        return _formfield(db_field, request, super().formfield_for_dbfield, **kwargs)

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

    @admin.display(description="Visibility", ordering="visibility")
    def visibility_short(self, stream: Stream) -> str:
        # The choice labels are sentences ("Restricted to the chosen users and groups"): a word
        # keeps the column narrow enough to stay clear of the filters.
        words = {"public": "public", "signed_in": "signed in", "restricted": "restricted"}
        return format_html(
            '<span title="{}">{}</span>', stream.get_visibility_display(), words.get(stream.visibility, "?")
        )

    def get_urls(self) -> list[URLPattern]:
        test_feed = self.admin_site.admin_view(self.test_feed_view)
        feed_docs = self.admin_site.admin_view(self.feed_docs_view)
        return [
            path("test-feed/", test_feed, name="streams_stream_test_unsaved_feed"),
            path("<int:object_id>/test-feed/", test_feed, name="streams_stream_test_feed"),
            path("feed-docs/<slug:kind>/", feed_docs, name="streams_stream_feed_docs"),
            *super().get_urls(),
        ]

    def test_feed_view(self, request: HttpRequest, object_id: int | None = None) -> HttpResponse:
        """Connect once and show the first points or the error: with the saved settings (GET), or
        with the settings of the form as it stands, saved or not (POST from the change form)."""
        stream = None if object_id is None else get_object_or_404(Stream, pk=object_id)
        if request.method not in ("GET", "POST") or (stream is None and request.method == "GET"):
            return HttpResponseNotAllowed(["POST"] if stream is None else ["GET", "POST"])
        # Testing sends the settings, secrets included, wherever they point: only for those who
        # could save them (view-only staff get 403, as for saving).
        allowed = (
            self.has_add_permission(request)
            if stream is None
            else self.has_change_permission(request, stream)
        )
        if not allowed:
            raise PermissionDenied("You may not change this stream, so you may not test its feed.")
        if request.method == "GET":
            assert stream is not None
            kind, settings, problem = stream.feed_kind, as_typed(stream), None
        else:
            kind, settings, problem = self._posted_settings(request, stream)
        result = None
        if problem is None and kind != "push":
            result = async_to_sync(probe)(kind, settings)
        slug = stream.slug if stream is not None else (request.POST.get("slug") or "<slug>")
        title = stream.title if stream is not None else request.POST.get("title") or "a new stream"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": stream,
            "title": f"Test the feed of “{title}”",
            "stream": stream,
            "kind": kind,
            "kind_label": FEED_KINDS[kind].label if kind in FEED_KINDS else kind,
            "unsaved": request.method == "POST",
            "problem": problem,
            "result": result,
            "settings_json": json.dumps(mask(settings), indent=2, ensure_ascii=False),
            "push_url": request.build_absolute_uri(reverse("push-points", args=["SLUG"])).replace(
                "SLUG", slug
            ),
        }
        return TemplateResponse(request, "admin/streams/stream/test_feed.html", context)

    def _posted_settings(self, request: HttpRequest, stream: Stream | None) -> tuple[str, Any, str | None]:
        """(kind, settings, what is wrong with them) from the change form's fields as posted.
        Masked secrets take the saved stream's values, as saving would."""
        kind = request.POST.get("feed_kind", "")
        if kind not in FEED_KINDS:
            return kind, {}, f"feed kind: unknown kind {kind!r} (known: {', '.join(sorted(FEED_KINDS))})"
        try:
            typed = FeedSettingsField(required=False).clean(request.POST.get("feed_settings", ""))
        except ValidationError as error:
            return kind, {}, " ".join(error.messages)
        try:
            settings = unmask(typed, stream.feed_settings if stream is not None else None)
        except MaskedSecretMissing as missing:
            return kind, typed, str(missing)
        return kind, settings, feed_settings_problem(kind, settings)

    def feed_docs_view(self, request: HttpRequest, kind: str) -> HttpResponse:
        """docs/feeds/<kind>.md, for the link beside the settings box (the docs ship with the code)."""
        if kind not in SCHEMAS or not self.has_view_or_change_permission(request):
            raise Http404("no such feed kind")
        try:
            text = (DOCS / SCHEMAS[kind].doc).read_text(encoding="utf-8")
        except OSError:
            raise Http404("the docs of this feed kind are not installed") from None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"The {kind} feed",
            "text": text,
        }
        return TemplateResponse(request, "admin/streams/stream/feed_docs.html", context)

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


class PanelForm(forms.ModelForm):
    """A panel with its streams. The streams go through PanelStream, in order: streams already
    on the panel keep their places and newly chosen ones go last (a multiple select sends its
    choices in list order, not in the order they were picked)."""

    # Not named `streams`: admin refuses a many-to-many field with its own through model (E013),
    # so this form field stands in for it and is saved by hand.
    panel_streams = forms.ModelMultipleChoiceField(
        label="Streams",
        queryset=Stream.objects.all(),
        # One line that grows with its choices, searched as typed: the two-box chooser made
        # every panel some 300 px taller (a 3-panel dashboard form was 4,289 px).
        widget=AutocompleteSelectMultiple(Panel._meta.get_field("streams"), admin.site),
        help_text="Type to find streams. Traces follow this order: streams already on the panel "
        "first, new ones after.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["panel_streams"] = [stream.pk for stream in self.instance.ordered_streams()]
        decimals = self.fields.get("decimals")
        if decimals is not None:
            # Its help as a tooltip and a placeholder: a line of help under it made every panel taller.
            decimals.widget.attrs.update(placeholder="auto", title=decimals.help_text)
            decimals.help_text = ""

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
    # Rows of related fields, so a panel takes some 300 px; forms.js hides the rows of the
    # fields the panel's chart type does not use.
    fields = (
        ("chart_type", "title", "decimals"),
        ("panel_streams", "series"),
        ("position", "width", "height"),
        "candle_seconds",
        ("gauge_min", "gauge_max"),
        "area_fill",
    )

    def formfield_for_dbfield(self, db_field: models.Field, request: HttpRequest, **kwargs: Any) -> Any:
        return _formfield(db_field, request, super().formfield_for_dbfield, **kwargs)


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ("title", "slug", "visibility", "panel_count", "view_link")
    list_filter = ("visibility",)
    search_fields = ("title", "slug", "description")
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ("viewers", "viewer_groups")
    readonly_fields = ("created", "updated")
    inlines = (PanelInline,)

    class Media:
        css = {"all": ("streams/admin/admin.css",)}
        js = (FORMS_JS,)

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

    def formfield_for_dbfield(self, db_field: models.Field, request: HttpRequest, **kwargs: Any) -> Any:
        return _formfield(db_field, request, super().formfield_for_dbfield, **kwargs)

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
