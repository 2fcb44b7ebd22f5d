"""Shared command-line plumbing: ``--config FILE.toml`` merged under flags, one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from xalign.errors import ConfigError, XAlignError

__all__ = ["config_from_args", "run_main"]

T = TypeVar("T")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the description's line breaks."""


def config_from_args(cls: type[T], args: argparse.Namespace, *, config_file: str | None) -> T:
    """Build a config dataclass: its defaults, then the TOML file, then explicit flags.

    Flags must have been declared with ``default=argparse.SUPPRESS`` so only given ones appear.
    """
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from e
        data = data.get("extract", data) if cls.__name__ == "ExtractConfig" else data
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
        values.update(data)
    values.update({k: v for k, v in vars(args).items() if k in fields})
    return cls(**values)


def run_main(body: Callable[[], int]) -> int:
    """Run a command body: XAlignError → one line on stderr and exit 2; Ctrl-C → exit 130."""
    try:
        return body()
    except XAlignError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
