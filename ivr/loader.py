"""YAML loading with line numbers: parse a flow file into plain data plus a map of positions.

PyYAML's ``safe_load`` silently keeps the last of duplicate keys and forgets where values
came from. Here the node tree is composed first, then turned into Python data by our own
walker, which

* reports duplicate keys (with the line of the first definition),
* records the position of every key and value by its path (``("flows", "hotline", "steps",
  "greet", "next")``) in a :class:`SourceMap`,
* reads floats as ``Decimal`` (money must never pass through binary floats),
* supports anchors, aliases and ``<<`` merge keys, and refuses recursive aliases.

Schema (pydantic) errors are mapped back to YAML positions by :func:`schema_issues`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ivr.errors import FlowIssue
from ivr.schema import KEY_PATTERN, NAME_PATTERN, TARGET_PATTERN

__all__ = [
    "Path_",
    "SourceMap",
    "format_path",
    "parse_yaml",
    "read_source",
    "schema_issues",
]

#: A path into the document: mapping keys and sequence indexes.
Path_ = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MAX_DEPTH = 100


@dataclass
class SourceMap:
    """Positions (0-based line and column, as PyYAML marks them) of keys and values by path."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    texts: dict[Path_, int] = field(default_factory=dict)
    """Paths of one-line plain or quoted strings written without escapes, to the column offset
    of their first character from the node's start (1 when quoted): positions inside such a
    string map to columns one to one."""

    def text_position(self, path: Path_, offset: int) -> tuple[int, int]:
        """1-based position of the ``offset``-th character of the string at ``path`` (the
        string's own position when the text does not map to columns one to one)."""
        line, column = self.value_position(path)
        shift = self.texts.get(path)
        if shift is None:
            return line, column
        return line, column + shift + offset

    def value_position(self, path: Path_) -> tuple[int, int]:
        """1-based position of the value at ``path``, or of its nearest recorded ancestor."""
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found[0] + 1, found[1] + 1
        return 1, 1

    def key_position(self, path: Path_) -> tuple[int, int]:
        """1-based position of the key whose value is at ``path`` (the value's when none)."""
        found = self.keys.get(path)
        if found is not None:
            return found[0] + 1, found[1] + 1
        return self.value_position(path)

    def has(self, path: Path_) -> bool:
        """True when the document has a value at ``path``."""
        return path in self.values


def format_path(path: Iterable[str | int]) -> str:
    """``flows.hotline.steps.greet.options[1].key`` style rendering of a path."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_source(path: str | Path) -> tuple[str | None, list[FlowIssue]]:
    """Read a flow file as UTF-8 text; returns ``(text, [])`` or ``(None, [issue])``."""
    name = str(path)
    try:
        return Path(path).read_text(encoding="utf-8"), []
    except FileNotFoundError:
        return None, [FlowIssue(name, 1, 1, "file not found")]
    except IsADirectoryError:
        return None, [FlowIssue(name, 1, 1, "is a directory, not a flow file")]
    except UnicodeDecodeError as exc:
        return None, [FlowIssue(name, 1, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return None, [FlowIssue(name, 1, 1, f"cannot read file: {exc.strerror or exc}")]


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.source = SourceMap()
        self.issues: list[FlowIssue] = []
        self.constructor = yaml.SafeLoader("")

    def issue(self, mark: yaml.Mark, message: str) -> None:
        self.issues.append(FlowIssue(self.filename, mark.line + 1, mark.column + 1, message))

    def build(self, node: yaml.Node, path: Path_, active: tuple[int, ...]) -> Any:
        self.source.values.setdefault(path, (node.start_mark.line, node.start_mark.column))
        if id(node) in active or len(active) > _MAX_DEPTH:
            self.issue(node.start_mark, "recursive alias or nesting too deep")
            return None
        active = (*active, id(node))
        if isinstance(node, yaml.ScalarNode):
            value = self.scalar(node)
            if isinstance(value, str):
                self.note_text(node, value, path)
            return value
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), active) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, active)
        self.issue(node.start_mark, f"unsupported YAML node {type(node).__name__}")
        return None

    def note_text(self, node: yaml.ScalarNode, value: str, path: Path_) -> None:
        start, end = node.start_mark, node.end_mark
        if start.line != end.line or node.style not in (None, '"', "'"):
            return
        shift = 0 if node.style is None else 1
        if end.column - start.column == len(value) + 2 * shift:
            self.source.texts[path] = shift

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _FLOAT_TAG:
            text = node.value.replace("_", "")
            try:
                number = Decimal(text)
            except InvalidOperation:
                self.issue(node.start_mark, f"not a finite number: {node.value!r}")
                return None
            if not number.is_finite():
                self.issue(node.start_mark, f"not a finite number: {node.value!r}")
                return None
            return number
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.issue(node.start_mark, f"invalid value: {exc.problem}")
            return None

    def mapping(self, node: yaml.MappingNode, path: Path_, active: tuple[int, ...]) -> Any:
        result: dict[Any, Any] = {}
        first_seen: dict[Any, yaml.Mark] = {}
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.extend(self.merge_sources(value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(key_node.start_mark, "a mapping key must be a plain value")
                continue
            key = self.scalar(key_node)
            if isinstance(key, list | dict):
                self.issue(key_node.start_mark, "a mapping key must be a plain value")
                continue
            if key in first_seen:
                first = first_seen[key]
                self.issue(
                    key_node.start_mark,
                    f"duplicate key {key!r} (first defined at line {first.line + 1})",
                )
                continue
            first_seen[key] = key_node.start_mark
            child: Path_ = (*path, key if isinstance(key, int) else str(key))
            self.source.keys[child] = (key_node.start_mark.line, key_node.start_mark.column)
            result[key] = self.build(value_node, child, active)
        for source in merged:
            for key_node, value_node in source.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key = self.scalar(key_node)
                if key in result or isinstance(key, list | dict):
                    continue
                child = (*path, key if isinstance(key, int) else str(key))
                self.source.keys[child] = (key_node.start_mark.line, key_node.start_mark.column)
                result[key] = self.build(value_node, child, active)
        return result

    def merge_sources(self, node: yaml.Node) -> list[yaml.MappingNode]:
        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(
            isinstance(item, yaml.MappingNode) for item in node.value
        ):
            return list(node.value)
        self.issue(node.start_mark, "a merge key '<<' needs a mapping or a list of mappings")
        return []


def parse_yaml(text: str, filename: str) -> tuple[Any, SourceMap, list[FlowIssue]]:
    """Parse YAML text into plain data, its :class:`SourceMap`, and the problems found.

    Syntax errors stop parsing (data is ``None``); duplicate keys and bad scalars are reported
    and the document is still returned so later checks can run.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        parts = [p for p in (exc.context, exc.problem) if p]
        message = "YAML syntax error: " + ", ".join(parts)
        return None, SourceMap(), [FlowIssue(filename, line, column, message)]
    except yaml.YAMLError as exc:
        return None, SourceMap(), [FlowIssue(filename, 1, 1, f"YAML error: {exc}")]
    if node is None:
        return None, SourceMap(), [FlowIssue(filename, 1, 1, "the file is empty")]
    builder = _Builder(filename)
    data = builder.build(node, (), ())
    return data, builder.source, builder.issues


# --------------------------------------------------------------------------------------------
# pydantic errors -> positions


def _union_tag(data: Any) -> str | None:
    """The tag pydantic puts in error locations for a value of a discriminated union."""
    if isinstance(data, dict):
        if isinstance(data.get("type"), str):
            return str(data["type"])
        if "play" in data:
            return "play"
        if "prompt" in data:
            return "ref"
    elif isinstance(data, str):
        return "text"
    return None


def _logical_path(loc: Sequence[str | int], data: Any) -> tuple[Path_, bool]:
    """Follow ``loc`` through ``data``, dropping the union tags pydantic inserts.

    Returns the path of document keys and whether the error is about a mapping key.
    """
    path: list[str | int] = []
    current = data
    tagged: set[int] = set()
    for part in loc:
        if part == "[key]":
            return tuple(path), True
        if id(current) not in tagged and part == _union_tag(current):
            tagged.add(id(current))
            continue
        path.append(part)
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(path), False


_PATTERN_NAMES = {
    NAME_PATTERN: "a valid name (letters, digits and _, not starting with a digit)",
    TARGET_PATTERN: "a valid target (step or flow:step)",
    KEY_PATTERN: "a keypad key (0-9, * or #)",
}


def _message(error: ErrorDetails, path: Path_) -> str:
    kind = error["type"]
    where = format_path(path) or "the file"
    last = path[-1] if path else ""
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return f"{format_path(path[:-1]) or 'the file'}: missing required field {last!r}"
    if kind == "extra_forbidden":
        return f"{format_path(path[:-1]) or 'the file'}: unknown field {last!r}"
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return f"{where}: unknown step type {ctx.get('tag')!r}; expected one of {expected}"
    if kind == "union_tag_not_found":
        return f"{where}: missing 'type' (the step kind)"
    if kind == "literal_error":
        return f"{where}: must be {ctx.get('expected')}, got {error.get('input')!r}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        what = _PATTERN_NAMES.get(pattern, f"a text matching {pattern}")
        return f"{where}: {error.get('input')!r} is not {what}"
    message = error["msg"]
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}"


def schema_issues(
    exc: ValidationError, data: Any, source: SourceMap, filename: str, prefix: Path_ = ()
) -> list[FlowIssue]:
    """Turn a pydantic ``ValidationError`` into positioned issues (one per error).

    ``data`` is what was validated, found at ``prefix`` in the document.
    """
    errors = exc.errors(include_url=False)
    located: list[tuple[ErrorDetails, Path_, bool]] = []
    for error in errors:
        path, on_key = _logical_path(error["loc"], data)
        path = (*prefix, *path)
        located.append((error, path, on_key))
    issues: list[FlowIssue] = []
    failed_paths = [path for error, path, _ in located if error["type"] != "too_short"]
    for error, path, on_key in located:
        if error["type"] == "too_short" and any(
            len(p) > len(path) and p[: len(path)] == path for p in failed_paths
        ):
            continue  # a container emptied only because its items failed
        kind = error["type"]
        if on_key or kind == "extra_forbidden":
            line, column = source.key_position(path)
        elif kind == "missing":
            line, column = source.value_position(path[:-1])
        elif kind == "union_tag_invalid" and source.has((*path, "type")):
            line, column = source.value_position((*path, "type"))
        else:
            cause = (error.get("ctx") or {}).get("error")
            offset = getattr(cause, "position", None)
            if isinstance(offset, int):  # an ExpressionError: point at the offending token
                line, column = source.text_position(path, offset)
            else:
                line, column = source.value_position(path)
        message = _message(error, path)
        if on_key:
            message = f"{format_path(path)}: invalid name {path[-1]!r}" if path else message
        issues.append(FlowIssue(filename, line, column, message))
    return issues
