"""Typed configuration: YAML files (with `extends:`), `key=value` overrides, and dataclass sections.

Each section's dataclass lives beside the code it configures; this module only knows how to
fill a dataclass from a mapping, check every key and convert every value.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Type, TypeVar, Union

import yaml

from mstkd.errors import MSTKDError

T = TypeVar("T")

EXTENDS_KEY = "extends"


def read_config_file(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a YAML config; `extends: other.yaml` (relative to the file) is merged underneath."""
    path = Path(path)
    if path.is_dir():
        raise MSTKDError(f"The config {path} is a folder; pass a YAML file (see Training/configs/).")
    if not path.is_file():
        raise MSTKDError(f"Config file not found: {path}. Pass a YAML file (see Training/configs/).")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (UnicodeDecodeError, OSError) as error:
        raise MSTKDError(f"Cannot read the config {path} as text ({error}); pass a YAML file.") from None
    except yaml.YAMLError as error:
        raise MSTKDError(f"{path} is not valid YAML: {_yaml_problem(error)}; fix the file.") from None
    if not isinstance(data, dict):
        raise MSTKDError(
            f"{path} must hold a mapping of sections (model:, loss:, ...), not {type(data).__name__}."
        )
    parent = data.pop(EXTENDS_KEY, None)
    if parent is None:
        return data
    return merge(read_config_file(path.parent / parent), data)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (line and column, counted from 1)."""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    """Deep-merge two mappings; values of `update` win, nested mappings merge key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply `section.key=value` overrides (values parsed as YAML: 3, 1e-4, true, [1, 2])."""
    result = copy.deepcopy(dict(data))
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise MSTKDError(f"Override '{override}' must look like section.key=value, e.g. train.steps=100.")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise MSTKDError(f"Override '{override}': '{part}' is a value, not a section.")
        node[leaf] = value
    return result


def from_mapping(cls: Type[T], data: Any, where: str) -> T:
    """Build the dataclass `cls` from a mapping, refusing unknown keys and ill-typed values."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise MSTKDError(f"'{where}' must be a mapping of settings, not {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise MSTKDError(
            f"Unknown setting(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"'{where}' accepts: {', '.join(sorted(fields))}."
        )
    values = {name: convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise MSTKDError(f"Invalid '{where}' settings: {error}") from None


def to_mapping(instance: Any) -> Dict[str, Any]:
    """A dataclass as plain YAML/JSON-friendly data (tuples become lists)."""
    return _plain(dataclasses.asdict(instance))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def convert(hint: Any, value: Any, where: str) -> Any:
    """Convert one YAML value to the type a dataclass field declares."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return convert(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise MSTKDError(f"'{where}' must be a list, not {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(args[0], v, where) for v in value)
        if len(args) != len(value):
            raise MSTKDError(f"'{where}' must have {len(args)} entries, not {len(value)}.")
        return tuple(convert(a, v, where) for a, v in zip(args, value))
    if origin in (dict, Mapping) or hint in (dict, Dict):
        if not isinstance(value, Mapping):
            raise MSTKDError(f"'{where}' must be a mapping, not {value!r}.")
        value_hint = args[1] if args else Any
        return {str(k): convert(value_hint, v, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise MSTKDError(f"'{where}' must be true or false, not {value!r}.")
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise MSTKDError(f"'{where}' must be a number, not {value!r}.")
        try:
            number = float(value)
        except ValueError:
            raise MSTKDError(f"'{where}' must be a number, not {value!r}.") from None
        if hint is int:
            if not number.is_integer():
                raise MSTKDError(f"'{where}' must be a whole number, not {value!r}.")
            return int(number)
        return number
    if hint is str:
        if not isinstance(value, str):
            raise MSTKDError(f"'{where}' must be text, not {value!r}.")
        return value
    raise TypeError(f"config field {where} has a type this loader does not handle: {hint!r}")
