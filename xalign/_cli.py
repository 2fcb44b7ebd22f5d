"""Shared command-line plumbing: ``--config FILE.toml`` merged under flags, one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from xalign.errors import ConfigError, XAlignError

__all__ = ["check_toml_value", "config_from_args", "os_error_message", "run_main"]

T = TypeVar("T")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the description's line breaks."""


def _action_for(parser: argparse.ArgumentParser | None, key: str) -> argparse.Action | None:
    if parser is None:
        return None
    for action in parser._actions:
        if action.dest == key and action.option_strings:
            return action
    return None


def _type_name(kind: Any) -> str:
    return str(getattr(kind, "__name__", kind))


def check_toml_value(
    path: Path, key: str, value: Any, parser: argparse.ArgumentParser | None
) -> Any:
    """Check one TOML value with the rules of the flag that sets the same option.

    The flag's ``type`` and ``choices`` apply as they do on the command line, and the message
    says what the flag would have said (``invalid int value: 'many'``), plus the file and key.
    A value of the wrong TOML type (a string for a switch, a float for an integer option, a
    table where a string is expected) is refused rather than coerced.
    """
    action = _action_for(parser, key)
    if action is None:
        return value
    flag = action.option_strings[-1]
    where = f"{path}: {key} = {value!r}"
    if action.nargs == 0:  # store_true / store_false switches
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false (the switch {flag})")
        return value
    kind = action.type
    if isinstance(value, bool | dict):
        raise ConfigError(f"{where}: expected a {_type_name(kind or str)} value (as for {flag})")
    if kind is None:  # a string option; the config's own parser also accepts a list
        if isinstance(value, list):
            if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
                raise ConfigError(f"{where}: expected a list of strings (as for {flag})")
        elif not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string (as for {flag})")
    elif kind is int:
        if isinstance(value, float | list):
            raise ConfigError(f"{where}: invalid int value (as for {flag})")
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: invalid int value (as for {flag})") from None
    elif kind is float:
        if isinstance(value, list):
            raise ConfigError(f"{where}: invalid float value (as for {flag})")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: invalid float value (as for {flag})") from None
    elif callable(kind) and isinstance(value, str):
        try:
            value = kind(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            raise ConfigError(f"{where}: {e} (as for {flag})") from None
    if action.choices is not None and value not in action.choices:
        allowed = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: invalid choice (as for {flag}: choose from {allowed})")
    return value


def config_from_args(
    cls: type[T],
    args: argparse.Namespace,
    *,
    config_file: str | None,
    parser: argparse.ArgumentParser | None = None,
    removed: dict[str, str] | None = None,
) -> T:
    """Build a config dataclass: its defaults, then the TOML file, then explicit flags.

    Flags must have been declared with ``default=argparse.SUPPRESS`` so only given ones appear.
    With ``parser``, every TOML value is checked by the rules of its flag
    (:func:`check_toml_value`), so a config file and the command line fail the same way.
    ``removed`` maps options that are gone (their ``dest``, which is also their config-file
    key) to why: given as a flag (kept hidden in the parser) or as a key, they are refused
    with that reason rather than as unknown.
    """
    removed = removed or {}
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given_removed = sorted(set(vars(args)) & set(removed))
    if given_removed:
        raise ConfigError(removed[given_removed[0]])
    values: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from e
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); TOML is UTF-8") from None
        data = data.get("extract", data) if cls.__name__ == "ExtractConfig" else data
        gone = sorted(set(data) & set(removed))
        if gone:
            raise ConfigError(f"{path}: key {gone[0]!r}: {removed[gone[0]]}")
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
        values.update({k: check_toml_value(path, k, v, parser) for k, v in data.items()})
    values.update({k: v for k, v in vars(args).items() if k in fields})
    try:
        return cls(**values)
    except XAlignError:
        raise
    except (TypeError, ValueError) as e:
        src = f"{config_file}: " if config_file else ""
        raise ConfigError(f"{src}invalid option value ({e})") from None


def os_error_message(e: OSError) -> str:
    """One line for an operating-system error: the path, what happened, and what to do."""
    path = e.filename if e.filename is not None else ""
    if e.filename2 is not None:
        path = f"{path} -> {e.filename2}"
    what = e.strerror or str(e) or type(e).__name__
    hint = ""
    if e.errno == errno.ENOSPC:
        hint = "; the disk is full: free space and rerun (files already written were kept whole)"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "; choose a folder you can write to"
    elif e.errno == errno.ENOTDIR:
        hint = "; a file stands where a folder is expected"
    elif e.errno == errno.EISDIR:
        hint = "; a folder stands where a file is expected"
    return f"{path}: {what}{hint}" if path else f"{what}{hint}"


def run_main(body: Callable[[], int]) -> int:
    """Run a command body: XAlignError or OSError → one line on stderr, exit 2; Ctrl-C → 130."""
    try:
        return body()
    except XAlignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
