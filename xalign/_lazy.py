"""Packages whose public names load on first use (PEP 562), so ``import xalign.x`` stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, where: Mapping[str, str], namespace: dict[str, Any], names: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__``: each name in ``where`` is imported from its
    module the first time it is asked for, then kept in the package's ``namespace``.

    ``where`` maps a public name to its module, absolute (``xalign.extract._config``) or
    relative to ``package`` (``_config``); ``names`` are listed by ``dir()`` besides them.
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        full = module if module.startswith("xalign.") else f"{package}.{module}"
        value = getattr(importlib.import_module(full), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where, *names})

    return __getattr__, __dir__
