"""Streams as code: create or update streams and dashboards from a YAML or JSON file (like
Grafana provisioning).

The file is `{"streams": [...], "dashboards": [...]}` (either or both) or a bare list of
streams; each stream entry declares one stream completely:

    slug, title, description, enabled,
    feed: {kind, ...settings of that kind},
    chart: {type, window_points, window_seconds, y_title, unit},
    storage: {store, keep_seconds, keep_points},
    visibility: public | signed_in | restricted,
    viewers: [usernames], groups: [group names]

and each dashboard entry one dashboard with all its panels, in order:

    slug, title, description, visibility, viewers, groups, columns,
    panels: [{title, type, streams: [slugs], series, width, height, candle_seconds, min, max}]

Decisions:
- An entry is the whole truth about its stream: a key left out takes the model's default (and
  `viewers`/`groups` left out mean none), so a file re-applied after an admin edit puts the
  stream back as written. `slug`, `title` and `feed.kind` are required.
- Streams not in the file are left alone; provisioning never deletes.
- Values are checked by the model itself (Stream.full_clean, which asks the feed kind's
  clean_settings), so admin and provision accept and refuse the same things.
- Unknown usernames are refused (an account needs a password and an owner; make it first).
  Unknown group names are created: groups are only labels here, and a file may name a group
  before anyone is in it. The report lists the groups it created, so a typo shows.
- All or nothing: every stream is checked, every error reported, and a file with any error
  changes nothing (one transaction).
- A dashboard's panels are replaced as a whole when any of them differs from the file (panels
  have no name to match them by); an unchanged dashboard is not touched. A panel may name
  streams of the same file or streams already there; an unknown slug is refused, naming the panel.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction

from streams.models import Dashboard, Panel, PanelStream, Stream

STREAM_KEYS = (
    "slug",
    "title",
    "description",
    "enabled",
    "feed",
    "chart",
    "storage",
    "visibility",
    "viewers",
    "groups",
)
CHART_KEYS = ("type", "window_points", "window_seconds", "y_title", "unit")
STORAGE_KEYS = ("store", "keep_seconds", "keep_points")
# Model field -> the key a file author wrote, so an error points at their line, not our column.
FILE_KEY = {
    "feed_kind": "feed.kind",
    "chart_type": "chart.type",
    "window_points": "chart.window_points",
    "window_seconds": "chart.window_seconds",
    "y_title": "chart.y_title",
    "y_unit": "chart.unit",
    "store_points": "storage.store",
    "keep_seconds": "storage.keep_seconds",
    "keep_points": "storage.keep_points",
}
# Fields compared to decide "unchanged": a re-run that changes nothing must not save (or bump `updated`).
COMPARED_FIELDS = (
    "title",
    "description",
    "enabled",
    "feed_kind",
    "feed_settings",
    "chart_type",
    "window_points",
    "window_seconds",
    "y_title",
    "y_unit",
    "store_points",
    "keep_seconds",
    "keep_points",
    "visibility",
)
DASHBOARD_KEYS = ("slug", "title", "description", "visibility", "viewers", "groups", "columns", "panels")
PANEL_KEYS = ("title", "type", "streams", "series", "width", "height", "candle_seconds", "min", "max")
PANEL_FILE_KEY = {"chart_type": "type", "gauge_min": "min", "gauge_max": "max"}
DASHBOARD_COMPARED = ("title", "description", "visibility", "columns")
PANEL_COMPARED = (
    "title",
    "chart_type",
    "series",
    "width",
    "height",
    "candle_seconds",
    "gauge_min",
    "gauge_max",
)
_SETTING_PATH = re.compile(r"^[\w\[\].]+: ")
_REQUIRED = object()
GROUP_NAME_MAX = Group._meta.get_field("name").max_length
# Values put in place of a refused one while the rest of the entry is checked.
_STAND_INS: dict[str, Any] = {"slug": "", "title": "", "feed_kind": "simulate", "width": 1}


class ProvisionError(Exception):
    """The file was refused; `errors` holds every problem found, one line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    groups_created: list[str] = field(default_factory=list)
    dashboards_created: list[str] = field(default_factory=list)
    dashboards_updated: list[str] = field(default_factory=list)
    dashboards_unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What happened to the streams."""
        return f"created {len(self.created)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}"

    def dashboard_summary(self) -> str:
        return (
            f"created {len(self.dashboards_created)}, updated {len(self.dashboards_updated)}, "
            f"unchanged {len(self.dashboards_unchanged)}"
        )

    @property
    def has_dashboards(self) -> bool:
        return bool(self.dashboards_created or self.dashboards_updated or self.dashboards_unchanged)

    def __str__(self) -> str:
        return self.summary()


@dataclass
class _Plan:
    """One checked entry, ready to write."""

    stream: Stream
    is_new: bool
    fields_changed: bool
    viewer_names: list[str]
    group_names: list[str]


@dataclass
class _PanelPlan:
    panel: Panel  # unsaved; its dashboard is saved first
    stream_slugs: list[str]


@dataclass
class _DashboardPlan:
    dashboard: Dashboard
    is_new: bool
    fields_changed: bool
    panels_changed: bool
    panels: list[_PanelPlan]
    viewer_names: list[str]
    group_names: list[str]


def load_file(path: str | Path) -> Any:
    """Parse a provisioning file: YAML or JSON by extension, else JSON if it parses, else YAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProvisionError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except UnicodeDecodeError:
        raise ProvisionError([f"{path}: not UTF-8 text"]) from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _parse_json(text, path)
    elif suffix in (".yaml", ".yml"):
        data = _parse_yaml(text, path)
    else:
        try:
            data = json.loads(text)
        except ValueError:
            data = _parse_yaml(text, path)
    if data is None:
        raise ProvisionError([f"{path}: the file is empty"])
    return data


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ProvisionError([f"{path}: not valid JSON: {error}"]) from None


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ProvisionError([f"{path}: not valid YAML: {error}"]) from None


def provision(data: Mapping[str, Any] | list[Any], *, dry_run: bool = False) -> ProvisionReport:
    """Create or update the streams and dashboards `data` declares, all or nothing; raise
    ProvisionError listing every problem. With dry_run, check and report but write nothing."""
    stream_entries, dashboard_entries = _sections(data)
    report = ProvisionReport()
    with transaction.atomic():
        plans, errors = _check_all(stream_entries)
        declared = {
            e["slug"] for e in stream_entries if isinstance(e, Mapping) and isinstance(e.get("slug"), str)
        }
        streams = {plan.stream.slug: plan.stream for plan in plans}
        dashboard_plans, dashboard_errors = _check_dashboards(
            dashboard_entries, planned=streams, declared=declared
        )
        errors.extend(dashboard_errors)
        if errors:
            raise ProvisionError(errors)
        every = [*plans, *dashboard_plans]
        groups = _ensure_groups({name for plan in every for name in plan.group_names}, report=report)
        users = _users({name for plan in every for name in plan.viewer_names})
        for plan in plans:
            _apply(plan, users=users, groups=groups, report=report)
        for dashboard_plan in dashboard_plans:
            _apply_dashboard(dashboard_plan, users=users, groups=groups, report=report)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _sections(data: Any) -> tuple[list[Any], list[Any]]:
    """(stream entries, dashboard entries) of a file."""
    if not isinstance(data, Mapping):
        if not isinstance(data, list):
            raise ProvisionError(['"streams" must be a list of streams'])
        return data, []
    unknown = sorted(str(key) for key in data if key not in ("streams", "dashboards"))
    if unknown:
        raise ProvisionError([f'unknown top-level key "{unknown[0]}" (known: streams, dashboards)'])
    if "streams" not in data and "dashboards" not in data:
        raise ProvisionError(['the file needs a top-level "streams" or "dashboards" list'])
    streams, dashboards = data.get("streams", []), data.get("dashboards", [])
    errors = []
    if not isinstance(streams, list):
        errors.append('"streams" must be a list of streams')
    if not isinstance(dashboards, list):
        errors.append('"dashboards" must be a list of dashboards')
    if errors:
        raise ProvisionError(errors)
    return streams, dashboards


def _check_all(entries: list[Any]) -> tuple[list[_Plan], list[str]]:
    slugs = [entry.get("slug") if isinstance(entry, Mapping) else None for entry in entries]
    wanted = [slug for slug in slugs if isinstance(slug, str)]
    # Lock the rows we may update so two provision runs do not interleave their writes.
    existing = {stream.slug: stream for stream in Stream.objects.select_for_update().filter(slug__in=wanted)}
    # Usernames are looked up together: one query, and every missing name reported.
    known_users = set(_users(_viewer_names_in(entries)))
    plans: list[_Plan] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        slug = slugs[index]
        name = f'stream "{slug}"' if isinstance(slug, str) and slug else f"streams[{index}]"
        if isinstance(slug, str) and slug:
            if slug in seen:
                errors.append(f"{name}: slug: used twice in this file (streams[{seen[slug]}] and [{index}])")
                continue
            seen[slug] = index
        problems, plan = _check(entry, existing=existing, known_users=known_users)
        errors.extend(f"{name}: {problem}" for problem in problems)
        if plan is not None and not problems:
            plans.append(plan)
    return plans, errors


def _check(
    entry: Any, *, existing: dict[str, Stream], known_users: set[str]
) -> tuple[list[str], _Plan | None]:
    """The problems with one entry, and what to write when there are none."""
    if not isinstance(entry, Mapping):
        return ["must be an object with slug, title, feed, ..."], None
    problems = _unknown_keys(entry, STREAM_KEYS, prefix="")
    feed = entry.get("feed")
    if feed is None or not isinstance(feed, Mapping):
        problems.append("feed: missing" if feed is None else f"feed: must be an object, not {feed!r}")
        feed = None
    chart = entry.get("chart", {})
    if not isinstance(chart, Mapping):
        problems.append(f"chart: must be an object, not {chart!r}")
        chart = {}
    problems.extend(_unknown_keys(chart, CHART_KEYS, prefix="chart."))
    storage = entry.get("storage", {})
    if not isinstance(storage, Mapping):
        problems.append(f"storage: must be an object, not {storage!r}")
        storage = {}
    problems.extend(_unknown_keys(storage, STORAGE_KEYS, prefix="storage."))

    slug = entry.get("slug")
    stream = (existing.get(slug) if isinstance(slug, str) else None) or Stream()
    before = {name: getattr(stream, name) for name in COMPARED_FIELDS}
    specs: tuple[_Spec, ...] = (
        ("slug", entry, "slug", _REQUIRED),
        ("title", entry, "title", _REQUIRED),
        ("description", entry, "description", ""),
        ("enabled", entry, "enabled", True),
        ("visibility", entry, "visibility", Stream.Visibility.SIGNED_IN.value),
        ("feed_kind", feed, "kind", _REQUIRED),
        ("chart_type", chart, "type", Stream.ChartType.LINE.value),
        ("window_points", chart, "window_points", Stream._meta.get_field("window_points").default),
        ("window_seconds", chart, "window_seconds", None),
        ("y_title", chart, "y_title", ""),
        ("y_unit", chart, "unit", ""),
        ("store_points", storage, "store", True),
        ("keep_seconds", storage, "keep_seconds", Stream._meta.get_field("keep_seconds").default),
        ("keep_points", storage, "keep_points", Stream._meta.get_field("keep_points").default),
    )
    refused = _assign(stream, specs, file_keys=FILE_KEY, problems=problems)
    settings = {key: value for key, value in (feed or {}).items() if key != "kind"}
    odd_key = _non_text_key(settings, path="feed")
    if odd_key:
        # YAML allows `5: x`; the feed kinds expect text names (JSON, as admin sends, has nothing else).
        problems.append(f"{odd_key}: setting names must be text")
    stream.feed_settings = {} if "feed_kind" in refused or odd_key else settings

    viewer_names = _names(entry, key="viewers", problems=problems)
    group_names = _names(entry, key="groups", problems=problems)
    too_long = [name for name in group_names if len(name) > GROUP_NAME_MAX]
    if too_long:
        problems.append(
            f"groups: names are at most {GROUP_NAME_MAX} characters: {', '.join(map(_quoted, too_long))}"
        )
    missing = [viewer for viewer in viewer_names if viewer not in known_users]
    if missing:
        # Not created here: an account needs a password and an owner.
        problems.append(f"viewers: no such user {', '.join(map(_quoted, missing))}")
    try:
        # The same validation admin runs; clean() also fills the feed kind's defaults in.
        stream.full_clean(exclude=sorted(refused))
    except ValidationError as error:
        problems.extend(_model_problems(error))
    if problems:
        return problems, None
    after = {name: getattr(stream, name) for name in COMPARED_FIELDS}
    plan = _Plan(
        stream=stream,
        is_new=stream.pk is None,
        fields_changed=before != after,
        viewer_names=viewer_names,
        group_names=group_names,
    )
    return [], plan


# (model field, the file's object holding it or None when that object is missing, its key, default)
_Spec = tuple[str, "Mapping[str, Any] | None", str, Any]


def _assign(
    obj: models.Model, specs: tuple[_Spec, ...], *, file_keys: dict[str, str], problems: list[str]
) -> set[str]:
    """Set each field from the file (or its default); return the fields whose value was refused,
    which the model is then not asked about again."""
    refused: set[str] = set()
    for name, source, key, default in specs:
        if source is None:  # no such object in the file: already reported
            value, problem = None, ""
        elif key in source:
            value = source[key]
            problem = _type_problem(value, obj._meta.get_field(name))
        else:
            value = default
            problem = "missing" if default is _REQUIRED else None
        if problem is None:
            setattr(obj, name, value)
            continue
        if problem:
            problems.append(f"{file_keys.get(name, name)}: {problem}")
        refused.add(name)
        # A harmless stand-in, so clean() does not report knock-on errors about this field.
        setattr(obj, name, _STAND_INS.get(name, default))
    return refused


def _viewer_names_in(entries: list[Any]) -> set[str]:
    """Every username the entries name, so they are looked up in one query."""
    return {
        viewer
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("viewers"), list)
        for viewer in entry["viewers"]
        if isinstance(viewer, str)
    }


def _non_text_key(value: Any, *, path: str) -> str | None:
    """The path of the first mapping key that is not a string, anywhere inside `value`."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}.{key!r}"
            found = _non_text_key(item, path=f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _non_text_key(item, path=f"{path}[{index}]")
            if found:
                return found
    return None


def _type_problem(value: Any, model_field: Any) -> str | None:
    """Refuse values of the wrong type before the model quietly converts them (123 -> "123")."""
    if isinstance(model_field, models.BooleanField):
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    if isinstance(model_field, models.IntegerField):
        if value is None and model_field.null:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        return f"must be a whole number{' or null' if model_field.null else ''}, not {value!r}"
    if isinstance(model_field, models.FloatField):
        if value is None and model_field.null:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return None
        return f"must be a number{' or null' if model_field.null else ''}, not {value!r}"
    return None if isinstance(value, str) else f"must be a string, not {value!r}"


def _quoted(name: str) -> str:
    return f'"{name}"'


def _unknown_keys(raw: Mapping[str, Any], known: tuple[str, ...], *, prefix: str) -> list[str]:
    listed = ", ".join(known)
    return [
        f'unknown key "{prefix}{key}" (known: {listed})' for key in sorted(map(str, raw)) if key not in known
    ]


def _names(entry: Mapping[str, Any], *, key: str, problems: list[str]) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        problems.append(f"{key}: must be a list of names, not {value!r}")
        return []
    return list(dict.fromkeys(value))


def _model_problems(
    error: ValidationError, *, model: type[models.Model] = Stream, file_keys: dict[str, str] = FILE_KEY
) -> list[str]:
    """Model errors as file errors: `feed.rate: must be at most 1000`, `chart.type: must be one of ...`."""
    problems = []
    for name, field_errors in error.error_dict.items():
        # Stream.clean explains an unknown feed kind better than the choices check does.
        specific = [e for e in field_errors if e.code != "invalid_choice"]
        if name == "feed_kind" and specific:
            field_errors = specific
        for item in field_errors:
            message = " ".join(item.messages)
            if item.code == "invalid_choice" and name != NON_FIELD_ERRORS:
                choices = ", ".join(str(value) for value, _ in model._meta.get_field(name).choices)
                message = f"must be one of {choices}, not {item.params['value']!r}"
            if name == "feed_settings":
                # Feed errors already start with their setting's path ("rate: ...", "series[0].name: ...").
                problems.append(f"feed.{message}" if _SETTING_PATH.match(message) else f"feed: {message}")
            elif name == NON_FIELD_ERRORS:
                problems.append(message)
            else:
                problems.append(f"{file_keys.get(name, name)}: {message}")
    return problems


def _users(names: set[str]) -> dict[str, Any]:
    if not names:
        return {}
    model = get_user_model()
    lookup = {f"{model.USERNAME_FIELD}__in": names}
    return {user.get_username(): user for user in model.objects.filter(**lookup)}


def _ensure_groups(names: set[str], *, report: ProvisionReport) -> dict[str, Group]:
    groups = {group.name: group for group in Group.objects.filter(name__in=names)}
    for name in sorted(names - set(groups)):
        groups[name] = Group.objects.create(name=name)
        report.groups_created.append(name)
    return groups


def _apply(plan: _Plan, *, users: dict[str, Any], groups: dict[str, Group], report: ProvisionReport) -> None:
    stream = plan.stream
    viewer_ids = {users[name].pk for name in plan.viewer_names}
    group_ids = {groups[name].pk for name in plan.group_names}
    if plan.is_new:
        stream.save()
        stream.viewers.set(viewer_ids)
        stream.viewer_groups.set(group_ids)
        report.created.append(stream.slug)
        return
    access_changed = (
        set(stream.viewers.values_list("pk", flat=True)) != viewer_ids
        or set(stream.viewer_groups.values_list("pk", flat=True)) != group_ids
    )
    if not (plan.fields_changed or access_changed):
        report.unchanged.append(stream.slug)
        return
    # Saved even when only viewers changed, so `updated` says when access last changed.
    stream.save()
    stream.viewers.set(viewer_ids)
    stream.viewer_groups.set(group_ids)
    report.updated.append(stream.slug)


# Dashboards ----------------------------------------------------------------------------------


def _check_dashboards(
    entries: list[Any], *, planned: dict[str, Stream], declared: set[str]
) -> tuple[list[_DashboardPlan], list[str]]:
    """Check every dashboard entry. `planned`: the streams this file writes (checked, unsaved
    changes in place); `declared`: every stream slug the file names, good or not, so a panel on a
    refused stream is not reported a second time as unknown."""
    slugs = [entry.get("slug") if isinstance(entry, Mapping) else None for entry in entries]
    wanted = [slug for slug in slugs if isinstance(slug, str)]
    existing = {
        dashboard.slug: dashboard
        for dashboard in Dashboard.objects.select_for_update().filter(slug__in=wanted)
    }
    panel_slugs = {
        slug
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("panels"), list)
        for panel in entry["panels"]
        if isinstance(panel, Mapping) and isinstance(panel.get("streams"), list)
        for slug in panel["streams"]
        if isinstance(slug, str)
    }
    streams = {stream.slug: stream for stream in Stream.objects.filter(slug__in=panel_slugs - set(planned))}
    streams.update(planned)
    known_users = set(_users(_viewer_names_in(entries)))
    plans: list[_DashboardPlan] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        slug = slugs[index]
        name = f'dashboard "{slug}"' if isinstance(slug, str) and slug else f"dashboards[{index}]"
        if isinstance(slug, str) and slug:
            if slug in seen:
                errors.append(
                    f"{name}: slug: used twice in this file (dashboards[{seen[slug]}] and [{index}])"
                )
                continue
            seen[slug] = index
        problems, plan = _check_dashboard(
            entry, existing=existing, known_users=known_users, streams=streams, declared=declared
        )
        errors.extend(f"{name}: {problem}" for problem in problems)
        if plan is not None and not problems:
            plans.append(plan)
    return plans, errors


def _check_dashboard(
    entry: Any,
    *,
    existing: dict[str, Dashboard],
    known_users: set[str],
    streams: dict[str, Stream],
    declared: set[str],
) -> tuple[list[str], _DashboardPlan | None]:
    if not isinstance(entry, Mapping):
        return ["must be an object with slug, title, panels, ..."], None
    problems = _unknown_keys(entry, DASHBOARD_KEYS, prefix="")
    slug = entry.get("slug")
    dashboard = (existing.get(slug) if isinstance(slug, str) else None) or Dashboard()
    before = {name: getattr(dashboard, name) for name in DASHBOARD_COMPARED}
    specs: tuple[_Spec, ...] = (
        ("slug", entry, "slug", _REQUIRED),
        ("title", entry, "title", _REQUIRED),
        ("description", entry, "description", ""),
        ("visibility", entry, "visibility", Stream.Visibility.SIGNED_IN.value),
        ("columns", entry, "columns", Dashboard._meta.get_field("columns").default),
    )
    refused = _assign(dashboard, specs, file_keys={}, problems=problems)
    viewer_names = _names(entry, key="viewers", problems=problems)
    group_names = _names(entry, key="groups", problems=problems)
    too_long = [name for name in group_names if len(name) > GROUP_NAME_MAX]
    if too_long:
        problems.append(
            f"groups: names are at most {GROUP_NAME_MAX} characters: {', '.join(map(_quoted, too_long))}"
        )
    missing = [viewer for viewer in viewer_names if viewer not in known_users]
    if missing:
        problems.append(f"viewers: no such user {', '.join(map(_quoted, missing))}")
    try:
        dashboard.full_clean(exclude=sorted(refused))
    except ValidationError as error:
        problems.extend(_model_problems(error, model=Dashboard, file_keys={}))
    if "columns" in refused or dashboard.columns is None or dashboard.columns < 1:
        dashboard.columns = Dashboard._meta.get_field("columns").default  # panels are checked against it

    raw_panels = entry.get("panels", [])
    panels: list[_PanelPlan] = []
    if not isinstance(raw_panels, list):
        problems.append(f"panels: must be a list of panels, not {raw_panels!r}")
        raw_panels = []
    for index, raw in enumerate(raw_panels):
        title = raw.get("title") if isinstance(raw, Mapping) else None
        label = f'panels[{index}] ("{title}")' if isinstance(title, str) and title else f"panels[{index}]"
        panel_problems, panel_plan = _check_panel(
            raw, dashboard=dashboard, position=index, streams=streams, declared=declared
        )
        problems.extend(f"{label}: {problem}" for problem in panel_problems)
        if panel_plan is not None:
            panels.append(panel_plan)
    if problems:
        return problems, None
    after = {name: getattr(dashboard, name) for name in DASHBOARD_COMPARED}
    is_new = dashboard.pk is None
    return [], _DashboardPlan(
        dashboard=dashboard,
        is_new=is_new,
        fields_changed=before != after,
        panels_changed=is_new
        or _stored_panels(dashboard) != [_signature(p.panel, p.stream_slugs) for p in panels],
        panels=panels,
        viewer_names=viewer_names,
        group_names=group_names,
    )


def _check_panel(
    raw: Any, *, dashboard: Dashboard, position: int, streams: dict[str, Stream], declared: set[str]
) -> tuple[list[str], _PanelPlan | None]:
    if not isinstance(raw, Mapping):
        return ["must be an object with type, streams, ..."], None
    problems = _unknown_keys(raw, PANEL_KEYS, prefix="")
    panel = Panel(dashboard=dashboard, position=position)
    specs: tuple[_Spec, ...] = (
        ("title", raw, "title", ""),
        ("chart_type", raw, "type", Panel.ChartType.LINE.value),
        ("series", raw, "series", ""),
        # Half the grid, or all of a narrower one.
        ("width", raw, "width", min(Panel._meta.get_field("width").default, dashboard.columns)),
        ("height", raw, "height", Panel._meta.get_field("height").default),
        ("candle_seconds", raw, "candle_seconds", Panel._meta.get_field("candle_seconds").default),
        ("gauge_min", raw, "min", None),
        ("gauge_max", raw, "max", None),
    )
    refused = _assign(panel, specs, file_keys=PANEL_FILE_KEY, problems=problems)
    if refused & {"gauge_min", "gauge_max"}:
        # A range with one end refused is not also "only one end set".
        panel.gauge_min = panel.gauge_max = None
    slugs = raw.get("streams")
    stream_problems: list[str] = []
    if slugs is None:
        stream_problems.append("streams: missing (a list of stream slugs)")
        slugs = []
    elif not isinstance(slugs, list) or not all(isinstance(slug, str) and slug for slug in slugs):
        stream_problems.append(f"streams: must be a list of stream slugs, not {slugs!r}")
        slugs = []
    elif len(set(slugs)) != len(slugs):
        stream_problems.append("streams: a stream is listed twice")
    unknown = [slug for slug in slugs if slug not in streams and slug not in declared]
    if unknown:
        stream_problems.append(f"streams: no such stream {', '.join(map(_quoted, unknown))}")
    problems.extend(stream_problems)
    try:
        panel.full_clean(exclude=[*sorted(refused), "dashboard"])
    except ValidationError as error:
        problems.extend(_model_problems(error, model=Panel, file_keys=PANEL_FILE_KEY))
    resolved = [streams[slug] for slug in slugs if slug in streams]
    # Only with every stream known: otherwise that is the error to read. A stream of this file
    # that was refused is not in `streams` (and its own errors are reported).
    if not stream_problems and len(resolved) == len(slugs) and "chart_type" not in refused:
        try:
            panel.clean_streams(resolved)
        except ValidationError as error:
            problems.extend(_model_problems(error, model=Panel, file_keys=PANEL_FILE_KEY))
    return problems, _PanelPlan(panel=panel, stream_slugs=list(slugs))


def _signature(panel: Panel, stream_slugs: list[str]) -> tuple[Any, ...]:
    """What makes two panels the same: fields and streams in order (not the stored position)."""
    return (*(getattr(panel, name) for name in PANEL_COMPARED), tuple(stream_slugs))


def _stored_panels(dashboard: Dashboard) -> list[tuple[Any, ...]]:
    panels = dashboard.panels.prefetch_related(
        models.Prefetch("links", queryset=PanelStream.objects.select_related("stream"))
    )
    return [_signature(panel, [stream.slug for stream in panel.ordered_streams()]) for panel in panels]


def _apply_dashboard(
    plan: _DashboardPlan, *, users: dict[str, Any], groups: dict[str, Group], report: ProvisionReport
) -> None:
    dashboard = plan.dashboard
    viewer_ids = {users[name].pk for name in plan.viewer_names}
    group_ids = {groups[name].pk for name in plan.group_names}
    if not plan.is_new:
        access_changed = (
            set(dashboard.viewers.values_list("pk", flat=True)) != viewer_ids
            or set(dashboard.viewer_groups.values_list("pk", flat=True)) != group_ids
        )
        if not (plan.fields_changed or plan.panels_changed or access_changed):
            report.dashboards_unchanged.append(dashboard.slug)
            return
    dashboard.save()
    dashboard.viewers.set(viewer_ids)
    dashboard.viewer_groups.set(group_ids)
    if plan.panels_changed:
        dashboard.panels.all().delete()
        # Streams by slug now: the file's new streams have just been saved.
        slugs = {slug for panel_plan in plan.panels for slug in panel_plan.stream_slugs}
        streams = {stream.slug: stream for stream in Stream.objects.filter(slug__in=slugs)}
        for panel_plan in plan.panels:
            panel = panel_plan.panel
            panel.dashboard = dashboard
            panel.save()
            panel.set_streams([streams[slug] for slug in panel_plan.stream_slugs])
    (report.dashboards_created if plan.is_new else report.dashboards_updated).append(dashboard.slug)
