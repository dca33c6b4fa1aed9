"""Streams: what a feed is, how it is charted, and who may see it; dashboards of them."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Self, TypeVar

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from streams.access import rules as access
from streams.ingest.feeds import FEED_KINDS, clean_feed_settings, feed_class
from streams.ingest.feeds.base import FeedSettingsError

_M = TypeVar("_M", bound=models.Model)

MAX_WINDOW_POINTS = 100_000
MAX_DECIMALS = 10


class AreaFill(models.TextChoices):
    """What an area chart fills down to. The default fits the value axis to the values and fills
    towards zero, clipped at the axis: a price series at 100 keeps its shape instead of being
    flattened into a line along the top of an axis pulled down to 0."""

    AXIS_MIN = "", "Towards zero, the axis fitted to the values (a price keeps its shape)"
    NEXT = "next", "Down to the next series"
    ZERO = "zero", "Down to zero, the axis including zero"


def decimals_field(help_text: str) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(MAX_DECIMALS)], help_text=help_text
    )


def area_fill_field() -> models.CharField:
    return models.CharField(
        "area fill",
        max_length=8,
        blank=True,
        default=AreaFill.AXIS_MIN,
        choices=AreaFill.choices,
        help_text="Area charts only.",
    )


MAX_WINDOW_SECONDS = 7 * 24 * 3600
DEFAULT_KEEP_SECONDS = 30 * 24 * 3600
DEFAULT_KEEP_POINTS = 5_000_000


class VisibleQuerySet(models.QuerySet[_M]):
    def visible_to(self, user: Any) -> Self:
        return self.filter(access.visibility_filter(user, self.model))


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public: anyone, signed in or not"
    SIGNED_IN = "signed_in", "Signed-in users"
    RESTRICTED = "restricted", "Restricted to the chosen users and groups"


def access_controlled(*, plural: str) -> type[models.Model]:
    """An abstract base holding who may see a row (the rule itself is streams/access/rules.py);
    `plural` names the reverse relations, e.g. user.viewable_streams.

    A factory rather than one base with related_name="viewable_%(class)ss": migrations record
    the related name as written, so that one would differ from the recorded ones."""

    class AccessControlled(models.Model):
        Visibility = Visibility  # Stream.Visibility, Dashboard.Visibility

        visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.SIGNED_IN)
        viewers = models.ManyToManyField(
            settings.AUTH_USER_MODEL, blank=True, related_name=f"viewable_{plural}"
        )
        viewer_groups = models.ManyToManyField(Group, blank=True, related_name=f"viewable_{plural}")

        class Meta:
            abstract = True

    return AccessControlled


class StreamQuerySet(VisibleQuerySet["Stream"]):
    def pulled(self) -> StreamQuerySet:
        """Enabled streams whose feed the ingest worker runs."""
        kinds = [kind for kind, feed in FEED_KINDS.items() if feed.pulled]
        return self.filter(enabled=True, feed_kind__in=kinds)


class Stream(access_controlled(plural="streams")):
    class ChartType(models.TextChoices):
        LINE = "line", "Line"
        SCATTER = "scatter", "Scatter"
        BAR = "bar", "Bar"
        AREA = "area", "Area"

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)

    feed_kind = models.CharField(
        max_length=32, choices=[(kind, feed.label) for kind, feed in FEED_KINDS.items()], default="simulate"
    )
    feed_settings = models.JSONField(
        default=dict, blank=True, help_text="Settings of the feed kind, as JSON."
    )
    # The settings as last typed in admin, for their key order only: PostgreSQL's jsonb keeps
    # none. Admin shows it while it still reads as feed_settings (provision may have changed them).
    feed_settings_text = models.TextField(blank=True, default="", editable=False)

    chart_type = models.CharField(max_length=16, choices=ChartType.choices, default=ChartType.LINE)
    window_points = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=1000,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_POINTS)],
        help_text="Most recent points kept live and drawn; blank for no count limit.",
    )
    window_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_SECONDS)],
        help_text="Age of the oldest point kept live and drawn; blank for no age limit.",
    )
    y_title = models.CharField("y-axis title", max_length=100, blank=True)
    y_unit = models.CharField("y-axis unit", max_length=32, blank=True)
    decimals = decimals_field("Digits after the decimal point in values; blank: as many as the value needs.")
    area_fill = area_fill_field()

    store_points = models.BooleanField(
        "store points",
        default=True,
        help_text="Keep points in the database for range views, export and restarts; "
        "off keeps only the live window.",
    )
    keep_seconds = models.PositiveIntegerField(
        "keep for (seconds)",
        null=True,
        blank=True,
        default=DEFAULT_KEEP_SECONDS,
        validators=[MinValueValidator(60)],
        help_text="Stored points older than this are pruned; blank for no age limit.",
    )
    keep_points = models.PositiveBigIntegerField(
        "keep at most (points)",
        null=True,
        blank=True,
        default=DEFAULT_KEEP_POINTS,
        validators=[MinValueValidator(1)],
        help_text="Only the newest this many stored points are kept; blank for no count limit.",
    )

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = StreamQuerySet.as_manager()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        errors: dict[str, str] = {}
        try:
            self.feed_settings = clean_feed_settings(self.feed_kind, self.feed_settings)
        except FeedSettingsError as error:
            field = "feed_kind" if error.key == "kind" else "feed_settings"
            errors[field] = f"{error.key}: {error.message}" if field == "feed_settings" else error.message
        if self.window_points is None and self.window_seconds is None:
            errors["window_points"] = "Set a window in points, in seconds, or both."
        if errors:
            raise ValidationError(errors)

    @property
    def pulled(self) -> bool:
        return self.feed_kind in FEED_KINDS and FEED_KINDS[self.feed_kind].pulled

    @property
    def series_names(self) -> list[str]:
        try:
            return feed_class(self.feed_kind).series_names(self.feed_settings)
        except FeedSettingsError:
            return []

    @property
    def window_label(self) -> str:
        parts = []
        if self.window_points:
            parts.append(f"last {self.window_points:,} points")
        if self.window_seconds:
            parts.append(f"last {self.window_seconds:,} s")
        return " and ".join(parts)


TOKEN_PREFIX = "lc_"


class PushTokenQuerySet(models.QuerySet["PushToken"]):
    def active(self) -> PushTokenQuerySet:
        return self.filter(revoked__isnull=True)


class PushToken(models.Model):
    """A bearer token for the push API. Only its SHA-256 is stored: the token itself is shown
    once, when it is made (tokens are 240 random bits, so a slow hash would buy nothing)."""

    name = models.CharField(
        max_length=100, help_text="Who or what pushes with it, e.g. “line-3 PLC gateway”."
    )
    streams = models.ManyToManyField(
        Stream,
        related_name="push_tokens",
        limit_choices_to={"feed_kind": "push"},
        help_text="The push streams this token may write to.",
    )
    prefix = models.CharField(
        max_length=16, editable=False, help_text="The token's first characters, to tell tokens apart."
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.DateTimeField(null=True, blank=True, editable=False)

    objects = PushTokenQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self) -> str:
        """Give this row a new secret and return it; the caller shows it once and forgets it."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(30)
        self.prefix = token[:10]
        self.digest = self.hash(token)
        return token

    @property
    def is_active(self) -> bool:
        return self.revoked is None


class StoredBatchQuerySet(models.QuerySet["StoredBatch"]):
    def overlapping(self, *, start: float | None, end: float | None) -> StoredBatchQuerySet:
        """Batches holding any point with start <= t <= end (None: open-ended)."""
        batches = self
        if start is not None:
            batches = batches.filter(t_max__gte=start)
        if end is not None:
            batches = batches.filter(t_min__lte=end)
        return batches

    def in_id_order(self) -> StoredBatchQuerySet:
        return self.order_by("last_ms", "last_seq")

    def ids_within(self, low_ms: int | None, high_ms: int | None) -> StoredBatchQuerySet:
        """Batches whose last id's time is in [low_ms, high_ms] (None: open-ended): with
        PostgreSQL's partitions by last_ms, only those days' partitions are read."""
        batches = self
        if low_ms is not None:
            batches = batches.filter(last_ms__gte=low_ms)
        if high_ms is not None:
            batches = batches.filter(last_ms__lte=high_ms)
        return batches


class StoredBatch(models.Model):
    """One broadcast batch of a stream, as stored: the points of one tick, columnar JSON.

    A row per batch rather than per point: broadcast writes one row per stream per tick, and a
    range read decodes a few thousand rows instead of building a million model objects. Every
    point keeps its id (`data.ids`), so a resume "after <id>" is exact. The unique constraint
    on the batch's last id makes a retried write a no-op.
    """

    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="stored_batches")
    first_ms = models.BigIntegerField()
    first_seq = models.IntegerField()
    last_ms = models.BigIntegerField()
    last_seq = models.IntegerField()
    t_min = models.FloatField()
    t_max = models.FloatField()
    count = models.PositiveIntegerField()
    # {"ids": [...], "t": [seconds...], "y": {"<series>": [value|null, ...]}}
    data = models.TextField()

    objects = StoredBatchQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stream", "last_ms", "last_seq"], name="stored_batch_unique_id")
        ]
        indexes = [
            models.Index(fields=["stream", "t_max"], name="stored_batch_stream_t_max"),
            models.Index(fields=["stream", "t_min"], name="stored_batch_stream_t_min"),
        ]

    def __str__(self) -> str:
        return f"{self.stream_id}: {self.count} points up to {self.last_ms}-{self.last_seq}"


class StoredRollup(models.Model):
    """One bucket of one rollup tier of a stream: how many of its stored points fall in
    [start, start + tier) seconds, and the first of them (streams/storage/rollups.py)."""

    # No index of its own: the unique constraint leads with it (one index less per write).
    stream = models.ForeignKey(
        Stream, on_delete=models.CASCADE, related_name="stored_rollups", db_index=False
    )
    tier = models.PositiveIntegerField(help_text="Bucket width in seconds.")
    start = models.BigIntegerField(help_text="Bucket start, seconds since the epoch.")
    count = models.PositiveIntegerField()
    first_t = models.FloatField()
    # [t, {"<series>": value|null}]: a stored point, every series' value beside each other.
    first_point = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["stream", "tier", "start"], name="stored_rollup_unique_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.stream_id}: {self.count} points in {self.tier} s from {self.start}"


class StoredRollupSeries(models.Model):
    """One series in one bucket of a rollup tier: its values' count, sum, min, max, first and
    last, and the stored points (as StoredRollup.first_point) that hold its min and max."""

    # No index of its own: the unique constraint leads with it (one index less per write).
    stream = models.ForeignKey(
        Stream, on_delete=models.CASCADE, related_name="stored_rollup_series", db_index=False
    )
    tier = models.PositiveIntegerField(help_text="Bucket width in seconds.")
    start = models.BigIntegerField(help_text="Bucket start, seconds since the epoch.")
    series = models.TextField()
    count = models.PositiveIntegerField(help_text="Values of the series (nulls not counted).")
    sum = models.FloatField()
    min = models.FloatField()
    min_point = models.TextField()
    max = models.FloatField()
    max_point = models.TextField()
    first = models.FloatField()
    first_t = models.FloatField()
    last = models.FloatField()
    last_t = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "tier", "start", "series"], name="stored_rollup_series_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stream_id} {self.series}: {self.count} values in {self.tier} s from {self.start}"


class StoredRollupMark(models.Model):
    """How far a stream's coarser rollup tiers are rolled up: each tier holds every bucket that
    ends at or before `until` (seconds, a multiple of the 10 s tier), and none after.

    Also how far its stored rows' point times stray from their last ids, so a range read can
    bound `last_ms` (PostgreSQL's partition key) as well as the times (rollups.id_bounds): for
    every StoredBatch row of the stream, t_max * 1000 - last_ms <= ahead_ms and
    last_ms - t_min * 1000 <= behind_ms. Null: not known, no bound."""

    stream = models.OneToOneField(
        Stream, on_delete=models.CASCADE, primary_key=True, related_name="stored_rollup_mark"
    )
    until = models.BigIntegerField()
    ahead_ms = models.BigIntegerField(null=True)
    behind_ms = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"{self.stream_id}: rolled up to {self.until}"


MAX_DASHBOARD_COLUMNS = 24
MAX_PANEL_HEIGHT = 4
MAX_CANDLE_SECONDS = 7 * 24 * 3600


class Dashboard(access_controlled(plural="dashboards")):
    """Panels of charts on one page, over one socket. Who may open it follows the same rule as a
    stream (streams/access/rules.py); each panel then shows only to those who may see all its streams."""

    slug = models.SlugField(max_length=64, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    columns = models.PositiveSmallIntegerField(
        default=12,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DASHBOARD_COLUMNS)],
        help_text="Width of the grid; each panel spans some of these columns.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = VisibleQuerySet["Dashboard"].as_manager()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("dashboard-detail", args=[self.slug])


class Panel(models.Model):
    """One chart of a dashboard: one or more streams drawn one way, placed on the grid."""

    class ChartType(models.TextChoices):
        LINE = "line", "Line"
        AREA = "area", "Area"
        SCATTER = "scatter", "Scatter"
        BAR = "bar", "Bar"
        GAUGE = "gauge", "Gauge / big number (last value)"
        CANDLESTICK = "candlestick", "Candlestick (OHLC per interval)"

    # Chart types that show one series of one stream.
    SINGLE_SERIES = (ChartType.GAUGE, ChartType.CANDLESTICK)

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="panels")
    position = models.PositiveIntegerField(default=0, help_text="Panels are laid out in this order.")
    title = models.CharField(max_length=200, blank=True, help_text="Blank: the titles of its streams.")
    chart_type = models.CharField(max_length=16, choices=ChartType.choices, default=ChartType.LINE)
    streams = models.ManyToManyField(Stream, through="PanelStream", related_name="panels")
    series = models.CharField(
        max_length=100,
        blank=True,
        help_text="Show only this series. Gauges and candlesticks need one: blank is allowed "
        "when the stream has a single series.",
    )
    width = models.PositiveSmallIntegerField(
        default=6, validators=[MinValueValidator(1)], help_text="Grid columns the panel spans."
    )
    height = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_PANEL_HEIGHT)],
        help_text="Rows (about 300 px each).",
    )
    candle_seconds = models.PositiveIntegerField(
        "candle interval (seconds)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CANDLE_SECONDS)],
        help_text="Candlestick only: the ticks of each interval make one candle.",
    )
    gauge_min = models.FloatField(null=True, blank=True, help_text="Gauge only: both set draw a dial.")
    gauge_max = models.FloatField(null=True, blank=True, help_text="Neither set: a big number.")
    decimals = decimals_field("Digits after the decimal point in values; blank: its first stream's setting.")
    area_fill = area_fill_field()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.title or f"panel {self.position}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        columns = self._columns()
        if columns is not None and self.width is not None and self.width > columns:
            errors["width"] = f"At most the dashboard's {columns} columns, not {self.width}."
        if self.chart_type == self.ChartType.GAUGE:
            low, high = self.gauge_min, self.gauge_max
            if (low is None) != (high is None):
                errors["gauge_max" if high is None else "gauge_min"] = (
                    "Set both gauge min and max for a dial, or neither for a big number."
                )
            elif low is not None and high is not None and low >= high:
                errors["gauge_max"] = f"Must be above gauge min ({low:g}), not {high:g}."
        if errors:
            raise ValidationError(errors)

    def _columns(self) -> int | None:
        # The dashboard being edited alongside (admin inline, provisioning) may be unsaved.
        if self.dashboard_id is None and not Panel.dashboard.is_cached(self):
            return None
        return self.dashboard.columns

    def clean_streams(self, streams: list[Stream]) -> None:
        """Check the panel's streams (not part of clean(): they are set after the panel is saved)."""
        if not streams:
            raise ValidationError({"streams": "Choose at least one stream."})
        if self.chart_type in self.SINGLE_SERIES:
            if len(streams) != 1:
                raise ValidationError(
                    {
                        "streams": f"A {self.chart_type} panel shows one series of one stream: "
                        f"choose exactly one stream, not {len(streams)}."
                    }
                )
            known = streams[0].series_names
            if not self.series and len(known) > 1:
                raise ValidationError(
                    {
                        "series": f"Stream “{streams[0].slug}” has {len(known)} series "
                        f"({', '.join(known)}): name the one to show."
                    }
                )
        if self.series:
            # Streams that declare no series up front (names read from the data) cannot be checked.
            lacking = [s for s in streams if s.series_names and self.series not in s.series_names]
            if lacking:
                where = "; ".join(f"“{s.slug}” has {', '.join(s.series_names)}" for s in lacking)
                raise ValidationError({"series": f"No series “{self.series}” on every stream: {where}."})

    def ordered_streams(self) -> list[Stream]:
        """The panel's streams in their order (uses a prefetch of `links` when there is one)."""
        return [link.stream for link in self.links.all()]

    def set_streams(self, streams: list[Stream]) -> None:
        """Put exactly these streams on the panel, in this order."""
        PanelStream.objects.filter(panel=self).delete()
        PanelStream.objects.bulk_create(
            PanelStream(panel=self, stream=stream, position=index) for index, stream in enumerate(streams)
        )

    def display_title(self, streams: list[Stream] | None = None) -> str:
        if self.title:
            return self.title
        streams = self.ordered_streams() if streams is None else streams
        names = " · ".join(stream.title for stream in streams)
        return f"{names}: {self.series}" if self.series else names


class PanelStream(models.Model):
    """A stream on a panel, in order: its traces come in this order, and so do the colours."""

    panel = models.ForeignKey(Panel, on_delete=models.CASCADE, related_name="links")
    stream = models.ForeignKey(Stream, on_delete=models.CASCADE, related_name="panel_links")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position", "pk"]
        constraints = [models.UniqueConstraint(fields=["panel", "stream"], name="panel_stream_unique")]

    def __str__(self) -> str:
        return f"{self.stream_id} on panel {self.panel_id}"
