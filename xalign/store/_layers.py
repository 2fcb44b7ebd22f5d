"""Layer specs: ``"all"``, ``"last"``, ``"0,6-12"``, ``"-1"`` → layer numbers of a model.

Our numbering: layer ℓ = ``hidden_states[ℓ]``, 0 = embedding output, L = last block. The spec
language belongs to the store because every reader of a store resolves it (the extraction that
writes one as well).
"""

from __future__ import annotations

import re

from xalign.errors import ConfigError

__all__ = ["parse_layers"]

_LAYER_ITEM = re.compile(r"^(-?\d+)(?:-(-?\d+))?$")


def parse_layers(spec: str | list[int], num_layers: int) -> list[int]:
    """Resolve a layer spec to sorted layer numbers in ``0..num_layers``.

    >>> parse_layers("all", 12)[:3], parse_layers("-1", 12), parse_layers("0,6-8", 12)
    ([0, 1, 2], [12], [0, 6, 7, 8])
    """
    if isinstance(spec, list):
        items = [str(x) for x in spec]
    else:
        spec = spec.strip().lower()
        if spec == "all":
            return list(range(num_layers + 1))
        if spec == "last":
            return [num_layers]
        items = [s.strip() for s in spec.split(",") if s.strip()]
    out: set[int] = set()
    for item in items:
        m = _LAYER_ITEM.match(item)
        if not m:
            raise ConfigError(
                f"--layers {spec!r}: expected 'all', 'last', or comma-separated layers/ranges like "
                "'0,4,8-12' (negative counts from the end)"
            )
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        for layer in (a, b):
            if not -(num_layers + 1) <= layer <= num_layers:
                raise ConfigError(
                    f"--layers {layer} out of range: the model has L={num_layers} blocks, layers "
                    f"are 0..{num_layers} (0 = embedding output)"
                )
        a, b = a % (num_layers + 1), b % (num_layers + 1)
        if a > b:
            raise ConfigError(
                f"--layers {item!r}: a range runs upwards (layer {a} is after layer {b}); "
                f"write '{b}-{a}'"
            )
        out.update(range(a, b + 1))
    if not out:
        raise ConfigError(f"--layers {spec!r}: no layer named; e.g. 'all', 'last' or '0,6-12'")
    return sorted(out)
