"""Streams as code: create or update streams from a YAML or JSON file (like Grafana provisioning).

The file is `{"streams": [...]}` or a bare list; each entry declares one stream completely:

    slug, title, description, enabled,
    feed: {kind, ...settings of that kind},
    chart: {type, window_points, window_seconds, y_title, unit},
    storage: {store, keep_seconds, keep_points},
    visibility: public | signed_in | restricted,
    viewers: [usernames], groups: [group names]

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
"""

from __future__ import annotations

import json
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

from streams.models import Stream

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
_SETTING_PATH = re.compile(r"^[\w\[\].]+: ")
_REQUIRED = object()
GROUP_NAME_MAX = Group._meta.get_field("name").max_length
# Values put in place of a refused one while the rest of the entry is checked.
_STAND_INS: dict[str, Any] = {"slug": "", "title": "", "feed_kind": "simulate"}


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

    def summary(self) -> str:
        return f"created {len(self.created)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}"

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
    """Create or update the streams `data` declares, all or nothing; raise ProvisionError listing
    every problem. With dry_run, check and report but write nothing."""
    entries = _entries(data)
    report = ProvisionReport()
    with transaction.atomic():
        plans, errors = _check_all(entries)
        if errors:
            raise ProvisionError(errors)
        groups = _ensure_groups({name for plan in plans for name in plan.group_names}, report=report)
        users = _users({name for plan in plans for name in plan.viewer_names})
        for plan in plans:
            _apply(plan, users=users, groups=groups, report=report)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _entries(data: Any) -> list[Any]:
    if isinstance(data, Mapping):
        unknown = sorted(str(key) for key in data if key != "streams")
        if unknown:
            raise ProvisionError([f'unknown top-level key "{unknown[0]}" (known: streams)'])
        if "streams" not in data:
            raise ProvisionError(['the file needs a top-level "streams" list'])
        data = data["streams"]
    if not isinstance(data, list):
        raise ProvisionError(['"streams" must be a list of streams'])
    return data


def _check_all(entries: list[Any]) -> tuple[list[_Plan], list[str]]:
    slugs = [entry.get("slug") if isinstance(entry, Mapping) else None for entry in entries]
    wanted = [slug for slug in slugs if isinstance(slug, str)]
    # Lock the rows we may update so two provision runs do not interleave their writes.
    existing = {stream.slug: stream for stream in Stream.objects.select_for_update().filter(slug__in=wanted)}
    # Usernames are looked up together: one query, and every missing name reported.
    named = {
        viewer
        for entry in entries
        if isinstance(entry, Mapping) and isinstance(entry.get("viewers"), list)
        for viewer in entry["viewers"]
        if isinstance(viewer, str)
    }
    known_users = set(_users(named))
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
    # Model fields whose value was refused here: the model is not asked again about them.
    refused: set[str] = set()
    specs: tuple[tuple[str, Mapping[str, Any] | None, str, Any], ...] = (
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
    for name, source, key, default in specs:
        if source is None:  # no feed object: already reported
            value, problem = None, ""
        elif key in source:
            value = source[key]
            problem = _type_problem(value, Stream._meta.get_field(name))
        else:
            value = default
            problem = "missing" if default is _REQUIRED else None
        if problem is None:
            setattr(stream, name, value)
            continue
        if problem:
            problems.append(f"{FILE_KEY.get(name, name)}: {problem}")
        refused.add(name)
        # A harmless stand-in, so clean() does not report knock-on errors about this field.
        setattr(stream, name, _STAND_INS.get(name, default))
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


def _model_problems(error: ValidationError) -> list[str]:
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
                choices = ", ".join(str(value) for value, _ in Stream._meta.get_field(name).choices)
                message = f"must be one of {choices}, not {item.params['value']!r}"
            if name == "feed_settings":
                # Feed errors already start with their setting's path ("rate: ...", "series[0].name: ...").
                problems.append(f"feed.{message}" if _SETTING_PATH.match(message) else f"feed: {message}")
            elif name == NON_FIELD_ERRORS:
                problems.append(message)
            else:
                problems.append(f"{FILE_KEY.get(name, name)}: {message}")
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
