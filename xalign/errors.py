"""Errors that xalign raises for bad input: each says what, where, and what was expected."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "StoreError",
    "StoreMismatchError",
    "XAlignError",
]


class XAlignError(Exception):
    """Base class: a user-facing error whose message is one clear line.

    Command-line entry points catch it, print ``error: <message>`` to stderr and exit 2.
    """


class DataError(XAlignError, ValueError):
    """A corpus file or spec is malformed.

    ``path`` and ``line`` (1-based, when known) locate the problem; the message already
    contains them, e.g. ``data/x.tsv:17: empty text in column 'text'``.
    """

    def __init__(self, message: str, *, path: object = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ConfigError(XAlignError, ValueError):
    """An option has a value outside its allowed set or range."""


class ModelLoadError(XAlignError, OSError):
    """A model or tokenizer cannot be loaded (e.g. not available offline)."""


class StoreError(XAlignError, OSError):
    """A store is missing, incomplete or damaged."""


class StoreMismatchError(StoreError):
    """An existing store was made from another encoder, corpus or extraction config."""
