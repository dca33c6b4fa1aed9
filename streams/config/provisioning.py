"""Streams as code: create or update streams and dashboards from a YAML or JSON file (like
Grafana provisioning).

The file is `{"streams": [...], "dashboards": [...]}` (either or both) or a bare list of
streams; each stream entry declares one stream completely:

    slug, title, description, enabled,
    feed: {kind, ...settings of that kind},
    chart: {type, window_points, window_seconds, y_title, unit, decimals, area_fill},
    storage: {store, keep_seconds, keep_points},
    visibility: public | signed_in | restricted,
    viewers: [usernames], groups: [group names]

and each dashboard entry one dashboard with all its panels, in order:

    slug, title, description, visibility, viewers, groups, columns,
    panels: [{title, type, streams: [slugs], series, width, height, candle_seconds, min, max,
              decimals, area_fill}]

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

One table per model (STREAM, DASHBOARD, PANEL) says which key sets which field; the known keys,
the defaults, the key an error names and the fields compared to tell "unchanged" all come from it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import yaml
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models, transaction

from streams.models import Dashboard, Panel, PanelStream, Stream

# A Field's default when the key is left out: none (the key must be there), or the model's own.
REQUIRED = object()
MODEL_DEFAULT = object()


@dataclass(frozen=True)
class Field:
    """A key setting one model field to the value written (its type checked first)."""

    path: str  # as the file's author writes it: "title", "chart.type"
    field: str = ""  # the model field; left out: the key's own name ("chart.y_title" -> y_title)
    default: Any = MODEL_DEFAULT

    def __post_init__(self) -> None:
        object.__setattr__(self, "field", self.field or self.name)

    @property
    def section(self) -> str:
        """The object of the entry holding the key ("chart"), "" at the top."""
        return self.path.rpartition(".")[0]

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]


@dataclass(frozen=True)
class Settings:
    """A section whose keys, beside its Fields, are the settings of a JSON field (a feed kind's)."""

    path: str
    field: str


@dataclass(frozen=True)
class Own:
    """A key the entry's checker reads itself: a list of names, the panels."""

    path: str


@dataclass(frozen=True)
class Format:
    """How one model's entries are written."""

    model: type[models.Model]
    noun: str
    keys: tuple[Field | Settings | Own, ...]

    @cached_property
    def fields(self) -> tuple[Field, ...]:
        return tuple(key for key in self.keys if isinstance(key, Field))

    @cached_property
    def settings(self) -> tuple[Settings, ...]:
        return tuple(key for key in self.keys if isinstance(key, Settings))

    @property
    def plural(self) -> str:
        return f"{self.noun}s"

    @cached_property
    def sections(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key.section for key in self.fields if key.section))

    def known(self, section: str = "") -> tuple[str, ...]:
        """The keys of the entry (section "") or of one of its sections, in the table's order."""
        if section:
            return tuple(key.name for key in self.fields if key.section == section)
        return tuple(dict.fromkeys(key.path.partition(".")[0] for key in self.keys))

    @property
    def hint(self) -> str:
        return ", ".join(self.known()[:3])

    def required(self, section: str) -> bool:
        return any(key.default is REQUIRED for key in self.fields if key.section == section)

    def file_key(self, field_name: str) -> str:
        """The key an error about a model field names: the author's line, not our column."""
        return next((key.path for key in self.fields if key.field == field_name), field_name)

    def values(self, obj: models.Model) -> dict[str, Any]:
        """What the file sets: compared to decide "unchanged", as a re-run that changes nothing
        must not save (or bump `updated`)."""
        names = [key.field for key in (*self.fields, *self.settings)]
        return {name: getattr(obj, name) for name in names}


# Who may see it: the same keys on streams and dashboards (streams.models.access_controlled).
ACCESS = (Field("visibility"), Own("viewers"), Own("groups"))
STREAM = Format(
    Stream,
    "stream",
    (
        Field("slug", default=REQUIRED),
        Field("title", default=REQUIRED),
        Field("description"),
        Field("enabled"),
        Field("feed.kind", "feed_kind", default=REQUIRED),
        Settings("feed", "feed_settings"),
        Field("chart.type", "chart_type"),
        Field("chart.window_points"),
        Field("chart.window_seconds"),
        Field("chart.y_title"),
        Field("chart.unit", "y_unit"),
        Field("chart.decimals"),
        Field("chart.area_fill"),
        Field("storage.store", "store_points"),
        Field("storage.keep_seconds"),
        Field("storage.keep_points"),
        *ACCESS,
    ),
)
DASHBOARD = Format(
    Dashboard,
    "dashboard",
    (
        Field("slug", default=REQUIRED),
        Field("title", default=REQUIRED),
        Field("description"),
        *ACCESS,
        Field("columns"),
        Own("panels"),
    ),
)
PANEL = Format(
    Panel,
    "panel",
    (
        Field("title"),
        Field("type", "chart_type"),
        Own("streams"),
        Field("series"),
        Field("width"),  # its default depends on the dashboard's grid: _check_panel
        Field("height"),
        Field("candle_seconds"),
        Field("min", "gauge_min"),
        Field("max", "gauge_max"),
        Field("decimals"),
        Field("area_fill"),
    ),
)
_SETTING_PATH = re.compile(r"^[\w\[\].]+: ")
GROUP_NAME_MAX = Group._meta.get_field("name").max_length


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

    def record(self, noun: str, outcome: str, slug: str) -> None:
        """Note what became of an entry: `outcome` is created, updated or unchanged."""
        getattr(self, outcome if noun == "stream" else f"{noun}s_{outcome}").append(slug)

    def __str__(self) -> str:
        return self.summary()


@dataclass
class _PanelPlan:
    panel: Panel  # unsaved; its dashboard is saved first
    stream_slugs: list[str]


@dataclass
class _Plan:
    """One checked entry, ready to write."""

    format: Format
    obj: Stream | Dashboard  # the file's values set, not saved
    before: dict[str, Any]  # Format.values as they were stored
    viewer_names: list[str]
    group_names: list[str]
    panels: list[_PanelPlan] | None = None  # a dashboard's

    @property
    def fields_changed(self) -> bool:
        return self.format.values(self.obj) != self.before


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
    stream_entries, dashboard_entries = _lists(data)
    report = ProvisionReport()
    with transaction.atomic():
        plans, errors = _check_entries(STREAM, stream_entries)
        declared = {
            e["slug"] for e in stream_entries if isinstance(e, Mapping) and isinstance(e.get("slug"), str)
        }
        streams = _panel_streams(dashboard_entries, planned={plan.obj.slug: plan.obj for plan in plans})
        dashboard_plans, dashboard_errors = _check_entries(
            DASHBOARD, dashboard_entries, more=partial(_check_panels, streams=streams, declared=declared)
        )
        errors.extend(dashboard_errors)
        if errors:
            raise ProvisionError(errors)
        every = [*plans, *dashboard_plans]  # streams first: panels may show the file's new streams
        groups = _ensure_groups({name for plan in every for name in plan.group_names}, report=report)
        users = _users({name for plan in every for name in plan.viewer_names})
        for plan in every:
            report.record(plan.format.noun, _apply(plan, users=users, groups=groups), plan.obj.slug)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _lists(data: Any) -> tuple[list[Any], list[Any]]:
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


def _check_entries(
    fmt: Format,
    entries: list[Any],
    *,
    more: Callable[[Mapping[str, Any], _Plan, list[str]], None] | None = None,
) -> tuple[list[_Plan], list[str]]:
    """Check the entries of one list: every problem, named by its entry, and a plan for each good
    entry. `more` checks what only that model has (a dashboard's panels), adding to the problems."""
    slugs = [entry.get("slug") if isinstance(entry, Mapping) else None for entry in entries]
    wanted = [slug for slug in slugs if isinstance(slug, str)]
    # Lock the rows we may update so two provision runs do not interleave their writes.
    existing = {
        obj.slug: obj for obj in fmt.model._default_manager.select_for_update().filter(slug__in=wanted)
    }
    # Usernames are looked up together: one query, and every missing name reported.
    known_users = set(_users(_viewer_names_in(entries)))
    plans: list[_Plan] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        slug = slugs[index]
        name = f'{fmt.noun} "{slug}"' if isinstance(slug, str) and slug else f"{fmt.plural}[{index}]"
        if isinstance(slug, str) and slug:
            if slug in seen:
                errors.append(
                    f"{name}: slug: used twice in this file ({fmt.plural}[{seen[slug]}] and [{index}])"
                )
                continue
            seen[slug] = index
        problems, plan = _check_entry(fmt, entry, existing=existing, known_users=known_users)
        if plan is not None and more is not None:
            more(entry, plan, problems)
        errors.extend(f"{name}: {problem}" for problem in problems)
        if plan is not None and not problems:
            plans.append(plan)
    return plans, errors


def _check_entry(
    fmt: Format, entry: Any, *, existing: dict[str, Any], known_users: set[str]
) -> tuple[list[str], _Plan | None]:
    """The problems with one entry, and what to write (when there are none)."""
    if not isinstance(entry, Mapping):
        return [f"must be an object with {fmt.hint}, ..."], None
    slug = entry.get("slug")
    obj = (existing.get(slug) if isinstance(slug, str) else None) or fmt.model()
    before = fmt.values(obj)
    problems, refused = _read(fmt, entry, obj)
    viewer_names, group_names = _access_names(entry, known_users=known_users, problems=problems)
    try:
        # The same validation admin runs; Stream.clean() also fills the feed kind's defaults in.
        obj.full_clean(exclude=sorted(refused))
    except ValidationError as error:
        problems.extend(_model_problems(error, fmt))
    return problems, _Plan(fmt, obj, before, viewer_names, group_names)


def _read(
    fmt: Format, entry: Mapping[str, Any], obj: models.Model, *, defaults: Mapping[str, Any] | None = None
) -> tuple[list[str], set[str]]:
    """Set each field of the table from the entry, a key left out to its default (`defaults`
    override the table's); return the problems and the fields whose value was refused, which
    the model is then not asked about again."""
    problems = _unknown_keys(entry, fmt.known(), prefix="")
    # The entry and its sections; None: a section missing or not an object (already reported).
    sources: dict[str, Mapping[str, Any] | None] = {"": entry}
    for section in fmt.sections:
        raw = entry.get(section)
        if raw is None and fmt.required(section):
            problems.append(f"{section}: missing")
        elif section not in entry:
            raw = {}
        elif not isinstance(raw, Mapping):
            problems.append(f"{section}: must be an object, not {raw!r}")
        elif all(settings.path != section for settings in fmt.settings):
            problems.extend(_unknown_keys(raw, fmt.known(section), prefix=f"{section}."))
        sources[section] = raw if isinstance(raw, Mapping) else None
    refused: set[str] = set()
    for key in fmt.fields:
        model_field = obj._meta.get_field(key.field)
        default = (defaults or {}).get(key.field, key.default)
        fallback = model_field.get_default() if default is REQUIRED or default is MODEL_DEFAULT else default
        source = sources[key.section]
        if source is None:
            value, problem = None, ""
        elif key.name in source:
            value = source[key.name]
            problem = _type_problem(value, model_field)
        else:
            value = fallback
            problem = "missing" if default is REQUIRED else None
        if problem is None:
            setattr(obj, key.field, value)
            continue
        if problem:
            problems.append(f"{key.path}: {problem}")
        refused.add(key.field)
        # A harmless stand-in, so clean() does not report knock-on errors about this field.
        setattr(obj, key.field, fallback)
    for settings in fmt.settings:
        fields = fmt.known(settings.path)
        values = {name: value for name, value in (sources[settings.path] or {}).items() if name not in fields}
        odd_key = _non_text_key(values, path=settings.path)
        if odd_key:
            # YAML allows `5: x`; the feed kinds expect text names (JSON, as admin sends, has nothing else).
            problems.append(f"{odd_key}: setting names must be text")
        # Settings read against a refused kind would only report knock-on errors.
        kind_refused = any(key.field in refused for key in fmt.fields if key.section == settings.path)
        setattr(obj, settings.field, {} if kind_refused or odd_key else values)
    return problems, refused


def _access_names(
    entry: Mapping[str, Any], *, known_users: set[str], problems: list[str]
) -> tuple[list[str], list[str]]:
    """(viewers, groups) of an entry. Unknown users are refused (an account needs a password and
    an owner, so none is made here); unknown groups will be created."""
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
    return viewer_names, group_names


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


def _model_problems(error: ValidationError, fmt: Format) -> list[str]:
    """Model errors as file errors: `feed.rate: must be at most 1000`, `chart.type: must be one of ...`."""
    settings_paths = {settings.field: settings.path for settings in fmt.settings}
    problems = []
    for name, field_errors in error.error_dict.items():
        # The model's clean() (its errors carry no code) explains a refused choice better than
        # the choices check does: Stream.clean names an unknown feed kind and the known ones.
        if any(e.code is None for e in field_errors):
            field_errors = [e for e in field_errors if e.code != "invalid_choice"]
        for item in field_errors:
            message = " ".join(item.messages)
            if item.code == "invalid_choice" and name != NON_FIELD_ERRORS:
                choices = ", ".join(str(value) for value, _ in fmt.model._meta.get_field(name).choices)
                message = f"must be one of {choices}, not {item.params['value']!r}"
            if name in settings_paths:
                # Feed errors already start with their setting's path ("rate: ...", "series[0].name: ...").
                path = settings_paths[name]
                problems.append(f"{path}.{message}" if _SETTING_PATH.match(message) else f"{path}: {message}")
            elif name == NON_FIELD_ERRORS:
                problems.append(message)
            else:
                problems.append(f"{fmt.file_key(name)}: {message}")
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


def _apply(plan: _Plan, *, users: dict[str, Any], groups: dict[str, Group]) -> str:
    """Write one checked entry; return whether it was created, updated or unchanged."""
    obj = plan.obj
    is_new = obj.pk is None
    viewer_ids = {users[name].pk for name in plan.viewer_names}
    group_ids = {groups[name].pk for name in plan.group_names}
    panels_changed = plan.panels is not None and (
        is_new or _stored_panels(obj) != [_signature(p.panel, p.stream_slugs) for p in plan.panels]
    )
    if not is_new:
        access_changed = (
            set(obj.viewers.values_list("pk", flat=True)) != viewer_ids
            or set(obj.viewer_groups.values_list("pk", flat=True)) != group_ids
        )
        if not (plan.fields_changed or panels_changed or access_changed):
            return "unchanged"
    # Saved even when only viewers changed, so `updated` says when access last changed.
    obj.save()
    obj.viewers.set(viewer_ids)
    obj.viewer_groups.set(group_ids)
    if panels_changed:
        _replace_panels(obj, plan.panels or [])
    return "created" if is_new else "updated"


# Dashboards' panels --------------------------------------------------------------------------


def _panel_streams(entries: list[Any], *, planned: dict[str, Stream]) -> dict[str, Stream]:
    """The streams the panels of `entries` name, by slug: the file's (`planned`: checked, with
    their unsaved changes) and those already there."""
    slugs = {
        slug
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("panels"), list)
        for panel in entry["panels"]
        if isinstance(panel, Mapping) and isinstance(panel.get("streams"), list)
        for slug in panel["streams"]
        if isinstance(slug, str)
    }
    streams = {stream.slug: stream for stream in Stream.objects.filter(slug__in=slugs - set(planned))}
    streams.update(planned)
    return streams


def _check_panels(
    entry: Mapping[str, Any],
    plan: _Plan,
    problems: list[str],
    *,
    streams: dict[str, Stream],
    declared: set[str],
) -> None:
    """Check a dashboard entry's panels. `declared`: every stream slug the file names, good or
    not, so a panel on a refused stream is not reported a second time as unknown."""
    dashboard = plan.obj
    if dashboard.columns < 1:
        dashboard.columns = Dashboard._meta.get_field("columns").default  # panels are checked against it
    raw_panels = entry.get("panels", [])
    if not isinstance(raw_panels, list):
        problems.append(f"panels: must be a list of panels, not {raw_panels!r}")
        raw_panels = []
    plan.panels = []
    for index, raw in enumerate(raw_panels):
        title = raw.get("title") if isinstance(raw, Mapping) else None
        label = f'panels[{index}] ("{title}")' if isinstance(title, str) and title else f"panels[{index}]"
        panel_problems, panel_plan = _check_panel(
            raw, dashboard=dashboard, position=index, streams=streams, declared=declared
        )
        problems.extend(f"{label}: {problem}" for problem in panel_problems)
        if panel_plan is not None:
            plan.panels.append(panel_plan)


def _check_panel(
    raw: Any, *, dashboard: Dashboard, position: int, streams: dict[str, Stream], declared: set[str]
) -> tuple[list[str], _PanelPlan | None]:
    if not isinstance(raw, Mapping):
        return [f"must be an object with {PANEL.hint}, ..."], None
    panel = Panel(dashboard=dashboard, position=position)
    # Half the grid, or all of a narrower one.
    width = min(Panel._meta.get_field("width").default, dashboard.columns)
    problems, refused = _read(PANEL, raw, panel, defaults={"width": width})
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
        problems.extend(_model_problems(error, PANEL))
    resolved = [streams[slug] for slug in slugs if slug in streams]
    # Only with every stream known: otherwise that is the error to read. A stream of this file
    # that was refused is not in `streams` (and its own errors are reported).
    if not stream_problems and len(resolved) == len(slugs) and "chart_type" not in refused:
        try:
            panel.clean_streams(resolved)
        except ValidationError as error:
            problems.extend(_model_problems(error, PANEL))
    return problems, _PanelPlan(panel=panel, stream_slugs=list(slugs))


def _signature(panel: Panel, stream_slugs: list[str]) -> tuple[Any, ...]:
    """What makes two panels the same: fields and streams in order (not the stored position)."""
    return (*PANEL.values(panel).values(), tuple(stream_slugs))


def _stored_panels(dashboard: Dashboard) -> list[tuple[Any, ...]]:
    panels = dashboard.panels.prefetch_related(
        models.Prefetch("links", queryset=PanelStream.objects.select_related("stream"))
    )
    return [_signature(panel, [stream.slug for stream in panel.ordered_streams()]) for panel in panels]


def _replace_panels(dashboard: Dashboard, plans: list[_PanelPlan]) -> None:
    dashboard.panels.all().delete()
    # Streams by slug now: the file's new streams have just been saved.
    slugs = {slug for panel_plan in plans for slug in panel_plan.stream_slugs}
    streams = {stream.slug: stream for stream in Stream.objects.filter(slug__in=slugs)}
    for panel_plan in plans:
        panel = panel_plan.panel
        panel.dashboard = dashboard
        panel.save()
        panel.set_streams([streams[slug] for slug in panel_plan.stream_slugs])
