"""JMESPath expressions of the extract settings: compiled and checked once, then searched fast.

jmespath only finds unknown functions and wrong argument counts when an expression runs, so
compiling also walks the tree for them: a typo is refused when the settings are saved, not
at the first payload.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

from streams.ingest.feeds.base import FeedSettingsError
from streams.ingest.feeds.extract.errors import BadPayload

_FUNCTIONS = Functions().FUNCTION_TABLE
# Shared by every search: jmespath's ParsedResult.search builds a new interpreter (and its
# function table) per call, a third of the cost of a simple path. The interpreter keeps no
# state between searches.
_INTERPRETER = TreeInterpreter()


class Path:
    """A compiled expression, searched the way jmespath does. A plain field path (`price`,
    `data.last`, `@`) is followed with dict lookups, as jmespath's field and subexpression
    nodes do, without walking the tree; anything else goes through the interpreter."""

    __slots__ = ("search", "text", "tree")

    def __init__(self, expression: ParsedResult) -> None:
        self.text: str = expression.expression
        self.tree: Mapping[str, Any] = expression.parsed
        fields = plain_fields(self.tree)
        self.search: Callable[[Any], Any]
        if fields is None:
            self.search = functools.partial(_INTERPRETER.visit, self.tree)
        elif not fields:
            self.search = _itself
        elif len(fields) == 1:
            self.search = functools.partial(_field, fields[0])
        else:
            self.search = functools.partial(_fields, fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Path({self.text!r})"


def compile_path(text: Any, *, key: str) -> Path:
    """`text` compiled; FeedSettingsError naming `key` when it is no expression jmespath runs."""
    if not isinstance(text, str) or not text.strip():
        raise FeedSettingsError(key, f"must be a JMESPath expression (text), not {text!r}")
    compiled = _compiled(text)
    if isinstance(compiled, str):
        raise FeedSettingsError(key, compiled)
    return compiled


# Settings are cleaned wherever a stream's series are listed (every page that draws it), in
# admin and provision, and when a worker builds the feed: each expression is compiled once per
# process all the same. A Path is never changed, so one serves every feed that uses its text.
@functools.lru_cache(maxsize=4096)
def _compiled(text: str) -> Path | str:
    """The compiled expression, or why it is refused."""
    try:
        expression = jmespath.compile(text)
    except jmespath_errors.JMESPathError as error:
        return str(error)
    problem = _function_problem(expression.parsed)
    return Path(expression) if problem is None else problem


def search(path: Path, data: Any, *, what: str) -> Any:
    """What `path` finds in `data`; BadPayload naming `what` when the data makes it fail."""
    try:
        return path.search(data)
    except jmespath_errors.JMESPathError as error:
        # Type errors (abs() of a string) depend on the data, so they are the payload's fault.
        raise BadPayload(f"{what}: {error}") from None


def _itself(data: Any) -> Any:
    return data


def _field(name: str, data: Any) -> Any:
    # jmespath: a field of anything but an object is null.
    return data.get(name) if isinstance(data, dict) else None


def _fields(names: list[str], data: Any) -> Any:
    for name in names:
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def plain_fields(node: Mapping[str, Any]) -> list[str] | None:
    """The field names of a path made of fields only (`a.b.c`; `@` is none), else None."""
    kind = node["type"]
    if kind in ("current", "identity"):
        return []
    if kind == "field":
        return [node["value"]]
    if kind == "subexpression":
        names: list[str] = []
        for child in node["children"]:
            more = plain_fields(child)
            if more is None:
                return None
            names += more
        return names
    return None


def _function_problem(node: Mapping[str, Any]) -> str | None:
    """What is wrong with the function calls in an expression, if anything."""
    if node.get("type") == "function_expression":
        name = node["value"]
        spec = _FUNCTIONS.get(name)
        if spec is None:
            return f"Unknown function: {name}()"
        signature = spec["signature"]
        given = len(node["children"])
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if given < len(signature) or (given > len(signature) and not variadic):
            return f"{name}() takes {len(signature)}{' or more' if variadic else ''} arguments, not {given}"
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            problem = _function_problem(child)
            if problem is not None:
                return problem
    return None
