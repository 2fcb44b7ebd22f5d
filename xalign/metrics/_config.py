"""Options of the metrics runner, kept free of heavy imports (the CLI parser reads them).

Nothing here imports numpy, pandas, scikit-learn, torch or zarr: ``python -m xalign.metrics
--help`` and argument errors answer before any of them is loaded.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args

from xalign._validate import check_choice, check_interval
from xalign.errors import ConfigError

if TYPE_CHECKING:
    # the modes of the array functions these options are passed to; for annotations only, as
    # their modules import numpy (SCORINGS and BACKENDS spell the same values: a test checks)
    from xalign.metrics._knn import Backend
    from xalign.metrics._retrieval import Scoring

__all__ = [
    "BACKENDS",
    "CENTERINGS",
    "METRIC_GROUPS",
    "OUT_SUFFIXES",
    "SCORINGS",
    "Centering",
    "GoldOutOfRange",
    "MetricGroup",
    "MetricsConfig",
    "default_out",
    "split_store_arg",
]

#: Metric groups of ``--metrics`` (``all`` = every group the stores support).
MetricGroup = Literal[
    "retrieval", "clusters", "probe", "cka", "isotropy", "bucc", "stores", "word_align",
    "attention", "neurons",
]  # fmt: skip
METRIC_GROUPS: tuple[MetricGroup, ...] = get_args(MetricGroup)
#: ``--centering``: raw vectors, language-centred vectors, or both (two rows per number).
Centering = Literal["raw", "centered", "both"]
CENTERINGS: tuple[Centering, ...] = get_args(Centering)
#: ``--gold-out-of-range``: as ``out_of_range`` of :func:`xalign.data.gold_alignments`.
GoldOutOfRange = Literal["error", "drop"]
GOLD_OUT_OF_RANGE: tuple[GoldOutOfRange, ...] = get_args(GoldOutOfRange)
SCORINGS: tuple[Scoring, ...] = ("cosine", "margin", "csls")
BACKENDS: tuple[Backend, ...] = ("auto", "numpy", "faiss", "faiss-gpu")

C = TypeVar("C", bound=str)

#: Output types of the results table.
OUT_SUFFIXES = (".parquet", ".csv")


def _str_list(value: Any, flag: str) -> list[str]:
    if isinstance(value, str):
        return [x.strip() for x in value.split(",") if x.strip()]
    if isinstance(value, list | tuple) and all(isinstance(x, str) for x in value):
        return [x.strip() for x in value if x.strip()]
    raise ConfigError(f"{flag} {value!r}: expected a comma-separated string or a list of strings")


def _choices(flag: str, value: Any, allowed: tuple[C, ...]) -> list[C]:
    """A comma-separated string or list of strings, each one of ``allowed`` (at least one)."""
    given = _str_list(value, flag)
    if not given:
        raise ConfigError(
            f"{flag} {value!r}: names nothing; allowed values are {', '.join(allowed)}"
        )
    return cast("list[C]", [check_choice(flag, x, allowed) for x in given])


def _one_str(value: Any, flag: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{flag} {value!r}: expected a non-empty string")


def _int_at_least(
    value: Any, flag: str, minimum: int, note: str | None = None, *, maximum: int | None = None
) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{flag} {value!r}: invalid int value")
    check_interval(flag, value, low=minimum, note=note)  # "must be >= 0" below the range
    if maximum is not None:
        check_interval(flag, value, low=minimum, high=maximum, note=note)


#: Largest seed numpy and scikit-learn accept (``RandomState``: 0 .. 2**32 - 1).
MAX_SEED = 2**32 - 1
#: Most worker processes ``--workers`` takes (each holds a layer and its own copy of the
#: intermediate arrays).
MAX_WORKERS = 256
#: More resamples than this change no reported digit and only cost time and memory.
MAX_BOOTSTRAP = 1_000_000


def _switch(value: Any, flag: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{flag} {value!r}: expected true or false")


@dataclass
class MetricsConfig:
    """Options of ``python -m xalign.metrics`` (written beside the results as JSON).

    ``stores`` are paths or ``label=path``; labels become the ``checkpoint`` column. Every
    value is checked here with the same rule and message as its command-line flag, so the
    Python API, a TOML file and the flags fail alike.
    """

    stores: list[str] = field(default_factory=list)
    out: str | None = None
    metrics: list[MetricGroup | Literal["all"]] = field(default_factory=lambda: ["all"])
    pooling: str = "mean"
    layers: str = "all"
    langs: list[str] | None = None
    pivot: str | None = "eng"
    scoring: list[Scoring] = field(default_factory=lambda: ["cosine", "margin"])
    k: int = 4
    dedup: bool = True
    centering: Centering = "both"
    bootstrap: int = 1000
    sample_size: int = 5000
    cv: int = 5
    seed: int = 0
    backend: Backend = "auto"
    independent: bool = False
    gold: str | None = None
    gold_out_of_range: GoldOutOfRange = "error"
    progress: bool = True
    #: Worker processes for the per-layer groups (0 = one per available CPU, at most 4;
    #: 1 = none). Changes no number, so no results row records it.
    workers: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.stores, str):
            self.stores = [self.stores]
        if not isinstance(self.stores, list | tuple) or not all(
            isinstance(s, str | os.PathLike) for s in self.stores
        ):
            raise ConfigError(f"stores {self.stores!r}: expected a list of store folders")
        self.stores = [os.fspath(s) for s in self.stores]
        self.metrics = _choices("--metrics", self.metrics, ("all", *METRIC_GROUPS))
        self.scoring = _choices("--scoring", self.scoring, SCORINGS)
        if self.langs is not None:
            given = self.langs
            self.langs = _str_list(self.langs, "--langs")
            if not self.langs:
                raise ConfigError(
                    f"--langs {given!r}: names no language; give codes like deu,fra "
                    "(or leave --langs out for every language in the store)"
                )
        _one_str(self.pooling, "--pooling")
        if isinstance(self.layers, list) and all(
            isinstance(x, int) and not isinstance(x, bool) for x in self.layers
        ):
            self.layers = ",".join(map(str, self.layers))
        _one_str(self.layers, "--layers")
        if not self.layers.replace(",", "").strip():
            raise ConfigError(
                f"--layers {self.layers!r}: names no layer; expected 'all', 'last', or e.g. "
                "'0,6,12'"
            )
        _one_str(self.pivot, "--pivot", optional=True)
        if self.pivot == "none":
            self.pivot = None
        _one_str(self.out, "--out", optional=True)
        _one_str(self.gold, "--gold", optional=True)
        _int_at_least(self.k, "--k", 1)
        _int_at_least(self.bootstrap, "--bootstrap", 0, "0 = no intervals", maximum=MAX_BOOTSTRAP)
        _int_at_least(self.sample_size, "--sample-size", 4)
        _int_at_least(self.cv, "--cv", 2)
        _int_at_least(self.seed, "--seed", 0, maximum=MAX_SEED)
        _int_at_least(
            self.workers, "--workers", 0, "0 = one per available CPU, at most 4",
            maximum=MAX_WORKERS,
        )  # fmt: skip
        check_choice("--centering", self.centering, CENTERINGS)
        check_choice("--backend", self.backend, BACKENDS)
        check_choice("--gold-out-of-range", self.gold_out_of_range, GOLD_OUT_OF_RANGE)
        _switch(self.dedup, "--no-dedup")
        _switch(self.independent, "--independent")
        _switch(self.progress, "--no-progress")
        if not self.stores:
            raise ConfigError("no stores given: pass one or more store folders (or label=path)")
        for arg in self.stores:
            split_store_arg(arg)  # refuses an empty label or path now, not after opening

    @property
    def groups(self) -> list[str]:
        """The groups to run, in catalogue order."""
        if "all" in self.metrics:
            return list(METRIC_GROUPS)
        return [g for g in METRIC_GROUPS if g in self.metrics]

    @property
    def explicit(self) -> set[str]:
        """Groups asked for by name: only these may fail the run (``all`` skips with a note)."""
        return {m for m in self.metrics if m != "all"}

    @property
    def centerings(self) -> list[bool]:
        return {"raw": [False], "centered": [True], "both": [False, True]}[self.centering]

    @property
    def store_paths(self) -> list[str]:
        """The store folders, without their labels."""
        return [split_store_arg(s)[1] for s in self.stores]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_store_arg(arg: str) -> tuple[str | None, str]:
    """``label=path`` → (label, path); a bare path (even one with ``=`` in it) → (None, path).

    An empty label (``=runs/x``) or path (``before=``) is refused: the first would silently
    fall back to the store's own label, the second name the current folder.
    """
    if not arg.strip():
        raise ConfigError("empty store argument; expected a store folder or label=path")
    if "=" in arg and not Path(arg).exists():
        label, path = arg.split("=", 1)
        if not label.strip() or not path.strip():
            raise ConfigError(
                f"store argument {arg!r}: expected label=path with a non-empty label and path "
                "(e.g. before=runs/sib-before)"
            )
        return label, path
    return None, arg


def default_out(first_store: str) -> Path:
    """Where results go without ``--out``: beside the first store, never inside it.

    ``runs/tatoeba-e5`` → ``runs/tatoeba-e5.results.parquet`` (its resolved config:
    ``runs/tatoeba-e5.results.config.json``).
    """
    p = Path(os.path.abspath(first_store))
    return p.parent / f"{p.name}.results.parquet"
