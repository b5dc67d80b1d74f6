"""One TOML table of the config read key by key: typed, bounded, no unknown keys, errors named."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from console.config.locate import closest, key_line
from console.errors import ConfigError
from console.inputs import InputError, duration

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ENV_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Upper bounds of numeric settings: past them a value is a mistake, and a huge one overflows
# timers, SQLite integers or datetime arithmetic far from the line that set it.
HOUR, DAY = 3600.0, 86400.0
MAX_PORT = 65535


class Table:
    """A TOML table being validated: remembers its key path and which keys were read."""

    def __init__(self, source: Path, path: str, data: Any) -> None:
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            self.fail(f"must be a table, not {_type_name(data)}")
        self.data: dict[str, Any] = data
        self.read: set[str] = set()

    def key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, message: str, key: str | None = None) -> None:
        """ConfigError: the file and line (of the key, else of its table, when found), the
        key's path, `message`."""
        where = self.key_path(key) if key is not None else (self.path or "(top level)")
        raise ConfigError(f"{self._at(key)}: {where}: {message}")

    def _at(self, key: str | None) -> str:
        """`file:line` of `key` (or of this table, for a key not written), else `file`."""
        data = getattr(self, "data", None)  # not yet set when the table is not a table
        written = key is not None and isinstance(data, dict) and key in data
        line = key_line(self.source, self.key_path(key)) if written and key else None
        if line is None and self.path:
            line = key_line(self.source, self.path)
        return f"{self.source}:{line}" if line is not None else str(self.source)

    def _get(self, key: str, kind: type | tuple[type, ...], required: bool) -> Any:
        self.read.add(key)
        if key not in self.data:
            if required:
                self.fail("is required but missing", key)
            return None
        value = self.data[key]
        # bool is an int in Python; never accept true where a number is expected.
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            self.fail(f"must be {_kind_name(kind)}, not a boolean", key)
        if not isinstance(value, kind):
            self.fail(f"must be {_kind_name(kind)}, not {_type_name(value)}", key)
        return value

    def string(self, key: str, required: bool = False, default: str | None = None) -> Any:
        value = self._get(key, str, required)
        if value is None:
            return default
        if not value.strip():
            self.fail("must not be empty", key)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, False)
        return default if value is None else bool(value)

    def integer(self, key: str, default: int, minimum: int, maximum: int) -> int:
        """An integer within [minimum, maximum] (TOML integers reach 2**63: bound them all)."""
        value = self._get(key, int, False)
        if value is None:
            return default
        self._bounds(key, value, minimum, maximum)
        return int(value)

    def number(self, key: str, default: float, minimum: float, maximum: float) -> float:
        """A finite number within [minimum, maximum]: TOML also spells nan and inf, and a
        comparison with nan is always false, so check finiteness before the range."""
        value = self._get(key, (int, float), False)
        if value is None:
            return default
        if not math.isfinite(value):
            self.fail(
                f"must be a number from {_bound(minimum)} to {_bound(maximum)}, not {value}", key
            )
        self._bounds(key, value, minimum, maximum)
        return float(value)

    def seconds(
        self,
        key: str,
        default: float,
        longest: timedelta,
        examples: str,
        least: float = 0.0,
        too_short: str | None = None,
    ) -> float:
        """A span written as a duration ("90s", "10m", "4h", "2d"), in seconds: at most
        `longest`, at least `least` (else `too_short`, else the examples are the error)."""
        text = self.string(key)
        if text is None:
            return default
        try:
            span = duration(text, key, longest)
        except InputError as error:
            self.fail(error.message, key)
            raise AssertionError("unreachable") from None  # fail raises
        problem = f"must be a duration ({examples}), not {text!r}"
        if span is None:
            self.fail(problem, key)
            raise AssertionError("unreachable")
        if span.total_seconds() < least:
            self.fail((too_short or problem).format(text=repr(text)), key)
        return span.total_seconds()

    def _bounds(self, key: str, value: float, minimum: float, maximum: float) -> None:
        if value < minimum:
            self.fail(f"must be at least {_bound(minimum)}, not {value}", key)
        if value > maximum:
            self.fail(f"must be at most {_bound(maximum)}, not {value}", key)

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self._get(key, list, required)
        if value is None:
            return ()
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"must be a list of non-empty strings (item {index} is not)", key)
        if len(set(value)) != len(value):
            self.fail("lists the same value twice", key)
        return tuple(value)

    def table(self, key: str, required: bool = False) -> Table | None:
        self.read.add(key)
        if key not in self.data:
            if required:
                self.fail("is required but missing", key)
            return None
        return Table(self.source, self.key_path(key), self.data[key])

    def tables(self, key: str) -> Iterator[Table]:
        """An array of tables, e.g. [[clusters]]."""
        self.read.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.fail(f"must be an array of tables ([[{key}]]), not {_type_name(value)}", key)
        for index, item in enumerate(value):
            yield Table(self.source, f"{self.key_path(key)}[{index}]", item)

    def named_tables(
        self, key: str, known: Collection[str], unknown: str
    ) -> Iterator[tuple[str, Table]]:
        """The sub-tables of table `key` with their names, e.g. [projects.web.clusters.prod]:
        a name not in `known` fails with the message `unknown`; after the last, no other key."""
        outer = self.table(key)
        if outer is None:
            return
        for name in outer.data:
            if name not in known:
                outer.fail(unknown, name)
            entry = outer.table(name)
            assert entry is not None
            yield name, entry
        outer.done()

    def optional_integer(self, key: str, minimum: int, maximum: int) -> int | None:
        """An integer within AWS's bounds for the setting, or None when the key is absent."""
        if key not in self.data:
            self.read.add(key)
            return None
        return self.integer(key, minimum, minimum=minimum, maximum=maximum)

    def count(self, key: str, default: int, maximum: int = 10_000) -> int:
        """A count of at least one (sessions, connections)."""
        return self.integer(key, default, minimum=1, maximum=maximum)

    def name(self, key: str, what: str) -> str:
        """A cluster or project name: lower-case letters, digits and dashes."""
        value: str = self.string(key, required=True)
        if not NAME_PATTERN.match(value):
            self.fail(f"{what} name {value!r} must be lower-case letters, digits and dashes", key)
        return value

    def file_path(self, key: str, required: bool = False) -> Path | None:
        """A path; a relative one is relative to the config file, as a person reading it
        expects."""
        value = self.string(key, required=required)
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.source.parent / path

    def environment(self, key: str, secrets: bool = False) -> dict[str, str]:
        """A table of environment variables: values, or (`secrets`) SSM parameter names."""
        sub = self.table(key)
        if sub is None:
            return {}
        values: dict[str, str] = {}
        for variable in sub.data:
            if not ENV_NAME_PATTERN.match(variable):
                sub.fail("is not a valid environment variable name", variable)
            values[variable] = sub.string(variable, required=True)
        sub.done()
        for variable, parameter in values.items() if secrets else ():
            if not parameter.startswith("/"):
                sub.fail(
                    f"must be an SSM parameter name starting with /, not {parameter!r}", variable
                )
        return values

    def done(self) -> None:
        """Refuse keys nobody read: a typo must not be silently ignored. The error names the
        file's line and the valid key it most likely meant."""
        unknown = sorted(set(self.data) - self.read)
        if not unknown:
            return
        key = unknown[0]
        where = self._at(key)
        meant = closest(key, self.read)
        hint = (
            f" (did you mean {meant}?)"
            if meant
            else f" (valid here: {', '.join(sorted(self.read))})"
        )
        raise ConfigError(f"{where}: {self.key_path(key)}: unknown key{hint}")


def _bound(limit: float) -> str:
    """A bound as people write it: 86400, 0.05, 4294967295 (not 4.29497e+09)."""
    return str(int(limit)) if float(limit).is_integer() else f"{limit:g}"


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    names.update({list: "a list", dict: "a table"})
    if kind == (int, float):
        return "a number"
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
