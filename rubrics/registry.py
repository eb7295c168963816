"""The rubric registry: built-in rubrics, a user directory of YAML files, and rubrics registered at run time.

A ``name@version`` names one content for ever: registering it again with the same content is a
no-op, with other content a :class:`~rubrics.errors.RubricConflict`. Every operation is a few dict
operations with no await in between, so one event loop needs no lock.
"""

from __future__ import annotations

import builtins
import functools
import re
from importlib import resources
from pathlib import Path

from rubrics.errors import InvalidRubric, RubricConflict, RubricJudgeError, RubricNotFound
from rubrics.loader import load_rubric_file, rubric_from_yaml
from rubrics.schema import Rubric

__all__ = ["RubricRegistry", "builtin_rubrics", "parse_ref"]

_REF = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]{0,99})(?:@(?P<version>[1-9][0-9]{0,8}))?$")
_YAML_SUFFIXES = (".yaml", ".yml")


def parse_ref(ref: str) -> tuple[str, int | None]:
    """Split ``name`` or ``name@version`` into (name, version or None); anything else is InvalidRubric."""
    match = _REF.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise InvalidRubric(
            f"malformed rubric reference {ref!r}: expected 'name' or 'name@version' "
            "(lower-case name, version a positive integer)",
            field="rubric",
        )
    version = match.group("version")
    return match.group("name"), int(version) if version is not None else None


@functools.cache
def builtin_rubrics() -> tuple[Rubric, ...]:
    """Every ``rubrics/builtin/*.yaml``, read through importlib.resources so an installed package works too."""
    folder = resources.files("rubrics").joinpath("builtin")
    found: list[Rubric] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith(".yaml"):
            found.append(rubric_from_yaml(entry.read_text(encoding="utf-8"), source=f"rubrics/builtin/{entry.name}"))
    return tuple(found)


class RubricRegistry:
    """Rubrics by ``name@version`` and by content hash."""

    def __init__(self, user_dir: Path | str | None = None, *, include_builtin: bool = True) -> None:
        self._by_ref: dict[str, Rubric] = {}
        self._versions: dict[str, dict[int, Rubric]] = {}
        self._by_hash: dict[str, Rubric] = {}
        self._builtin: set[str] = set()
        if include_builtin:
            for rubric in builtin_rubrics():
                self._builtin.add(self.register(rubric).ref)
        if user_dir is not None:
            self.load_dir(user_dir)

    def load_dir(self, directory: Path | str) -> builtins.list[Rubric]:
        """Register every ``*.yaml``/``*.yml`` file of a directory (not recursive), in name order."""
        directory = Path(directory)
        if not directory.is_dir():
            raise RubricJudgeError(f"rubrics directory {str(directory)!r} does not exist", field="rubrics_dir")
        loaded: list[Rubric] = []
        for path in sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in _YAML_SUFFIXES):
            rubric = load_rubric_file(path)
            try:
                loaded.append(self.register(rubric))
            except RubricConflict as exc:
                raise RubricConflict(f"{path}: {exc.message}", field=exc.field) from exc
        return loaded

    def register(self, rubric: Rubric) -> Rubric:
        """Add a rubric; returns the registered one (the existing object when the content is the same)."""
        existing = self._by_ref.get(rubric.ref)
        if existing is not None:
            if existing.content_hash == rubric.content_hash:
                return existing
            raise RubricConflict(
                f"rubric {rubric.ref} is already registered with other content "
                f"(hash {existing.content_hash[:12]}, new {rubric.content_hash[:12]}); register a new version instead",
                field="rubric",
            )
        self._by_ref[rubric.ref] = rubric
        self._versions.setdefault(rubric.name, {})[rubric.version] = rubric
        self._by_hash[rubric.content_hash] = rubric
        return rubric

    def resolve(self, ref: str) -> Rubric:
        """``name`` (latest version) or ``name@version``; unknown is RubricNotFound, malformed InvalidRubric."""
        name, version = parse_ref(ref)
        return self.get(name, version)

    def get(self, name: str, version: int | None = None) -> Rubric:
        """A rubric by name and version; the latest version when ``version`` is None."""
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise RubricNotFound(f"unknown rubric {name!r}; known: {known}", field="rubric")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            have = ", ".join(f"{name}@{v}" for v in sorted(versions))
            raise RubricNotFound(f"unknown rubric {name}@{version}; registered: {have}", field="rubric") from None

    def get_by_hash(self, content_hash: str) -> Rubric | None:
        """The rubric with this content hash, or None."""
        return self._by_hash.get(content_hash)

    def versions(self, name: str) -> builtins.list[int]:
        return sorted(self._versions.get(name, {}))

    def is_builtin(self, ref: str) -> bool:
        return ref in self._builtin

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and ref in self._by_ref

    def __len__(self) -> int:
        return len(self._by_ref)

    def list(self) -> builtins.list[Rubric]:
        """Every registered rubric, by name then version."""
        return [self._versions[name][v] for name in sorted(self._versions) for v in sorted(self._versions[name])]
