"""Rubrics from YAML files, YAML text or plain dicts, and back to YAML.

Every failure becomes :class:`rubrics.errors.InvalidRubric` whose message names the path of the
wrong field (``axes[3].anchors``) and whose ``field`` is that path (``"rubric"`` when no finer
path is known).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rubrics.errors import InvalidRubric, RubricNotFound
from rubrics.schema import MAX_RUBRIC_BYTES, Rubric

__all__ = [
    "MAX_YAML_NODES",
    "YamlLimitExceeded",
    "dump_yaml",
    "load_rubric",
    "load_rubric_file",
    "load_yaml_bounded",
    "rubric_from_dict",
    "rubric_from_yaml",
]

# Enough errors to fix a file in one pass, few enough to stay readable in a log line.
_MAX_REPORTED_ERRORS = 8
# Model-level checks in the schema start their message with the path they concern.
_PATH_PREFIX = re.compile(r"^(?P<path>[a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)(?::| names )")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects repeated mapping keys, which plain YAML silently resolves to the last one."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, Hashable):
            continue  # construct_mapping reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)

# A rubric is a few hundred nodes; aliases may reuse text, but an "alias bomb" (aliases of aliases, each
# doubling) expands to billions of nodes from a few lines and used to abort `serve`. The expanded size is
# counted on the composed graph (each node once, memoised) before anything is constructed.
MAX_YAML_NODES = 200_000


class YamlLimitExceeded(ValueError):
    """YAML text over a byte limit or expanding (through aliases) to more than :data:`MAX_YAML_NODES` nodes."""


def load_yaml_bounded(text: str, *, max_bytes: int = MAX_RUBRIC_BYTES) -> Any:
    """One YAML document, no repeated keys, at most ``max_bytes`` UTF-8 bytes and :data:`MAX_YAML_NODES` nodes
    with every alias expanded; any YAML file the service reads from an operator or a client goes through here.

    Raises :class:`YamlLimitExceeded` over a limit, ``yaml.YAMLError`` or ``RecursionError`` for bad YAML.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise YamlLimitExceeded(f"{size} bytes; the file may have {max_bytes}")
    return _load_bounded(text)


def _load_bounded(text: str) -> Any:
    """Compose the one document, check its expanded size, then construct it (one parse)."""
    loader = _UniqueKeyLoader(text)  # a SafeLoader subclass: no arbitrary objects
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise YamlLimitExceeded(f"the YAML expands to more than {MAX_YAML_NODES} nodes (aliases)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes of the document with every alias expanded, capped just above the limit (memoised per node)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_YAML_NODES + 1  # a cycle (a recursive alias) counts as too large
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size = min(size + _expanded_size(child, memo), MAX_YAML_NODES + 1)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            size = min(size + _expanded_size(key_node, memo) + _expanded_size(value_node, memo), MAX_YAML_NODES + 1)
    memo[key] = size
    return size


def rubric_from_dict(data: Mapping[str, Any], *, source: str | None = None) -> Rubric:
    """Validate a plain mapping (parsed YAML or JSON) into a :class:`Rubric`."""
    if not isinstance(data, Mapping):
        raise InvalidRubric(f"{_where(source)}a rubric must be a mapping, got {type(data).__name__}", field="rubric")
    try:
        return Rubric.model_validate(dict(data))
    except ValidationError as exc:
        message, field = _describe(exc, data)
        raise InvalidRubric(f"{_where(source)}{message}", field=field) from exc


def rubric_from_yaml(text: str, *, source: str | None = None) -> Rubric:
    """Parse YAML text (one document, no repeated keys, bounded size and alias expansion) into a :class:`Rubric`."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RUBRIC_BYTES:
        raise InvalidRubric(f"{_where(source)}{size} bytes; a rubric file may have {MAX_RUBRIC_BYTES}", field="rubric")
    try:
        data = _load_bounded(text)
    except YamlLimitExceeded as exc:
        raise InvalidRubric(f"{_where(source)}{exc}", field="rubric") from exc
    except (yaml.YAMLError, RecursionError) as exc:
        raise InvalidRubric(f"{_where(source)}not valid YAML: {exc}", field="rubric") from exc
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise InvalidRubric(f"{_where(source)}a rubric file must hold one mapping, got {kind}", field="rubric")
    return rubric_from_dict(data, source=source)


def load_rubric_file(path: Path | str) -> Rubric:
    """Load one rubric from a YAML file (UTF-8)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RubricNotFound(f"no rubric file {str(path)!r}", field="path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRubric(f"cannot read rubric file {str(path)!r}: {exc}", field="path") from exc
    return rubric_from_yaml(text, source=str(path))


def load_rubric(source: Path | Mapping[str, Any]) -> Rubric:
    """Load a rubric from a YAML file path or from a mapping."""
    if isinstance(source, Path):
        return load_rubric_file(source)
    return rubric_from_dict(source)


def dump_yaml(rubric: Rubric) -> str:
    """The rubric as YAML in schema field order, Chinese kept as is; loading it back gives an equal rubric."""
    # mode="python" keeps the anchor levels as integer keys (1..5), as a person writes them.
    data = rubric.model_dump(mode="python")
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000, default_flow_style=False)


def _where(source: str | None) -> str:
    return f"invalid rubric {source!r}: " if source else "invalid rubric: "


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> tuple[str, str]:
    """One message naming every wrong path (up to a limit), and the first path as the error's field."""
    errors = exc.errors(include_url=False, include_input=False)
    parts: list[str] = []
    fields: list[str] = []
    for error in errors[:_MAX_REPORTED_ERRORS]:
        path = _format_loc(error["loc"])
        msg = _clean_msg(error)
        if not path:
            match = _PATH_PREFIX.match(msg)
            if match:
                path = match.group("path")
        fields.append(path or "rubric")
        label = path + _axis_hint(error["loc"], data) if path else ""
        parts.append(f"{label}: {msg}" if label and not msg.startswith(path) else msg)
    if len(errors) > _MAX_REPORTED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_REPORTED_ERRORS} more errors")
    return "; ".join(parts), fields[0] if fields else "rubric"


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_msg(error: ErrorDetails) -> str:
    msg = error["msg"]
    # pydantic prefixes errors raised by validators; the prefix says nothing to a rubric author.
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _axis_hint(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """Name the axis behind ``axes[i]`` so an author need not count list items."""
    if len(loc) >= 2 and loc[0] == "axes" and isinstance(loc[1], int):
        axes = data.get("axes")
        if isinstance(axes, list) and 0 <= loc[1] < len(axes) and isinstance(axes[loc[1]], Mapping):
            key = axes[loc[1]].get("key")
            if isinstance(key, str):
                return f" (axis {key!r})"
    return ""
