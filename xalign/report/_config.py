"""Options of ``python -m xalign.report`` (a dataclass, so ``--config FILE.toml`` works)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from xalign.errors import ConfigError

__all__ = ["ReportConfig"]


def _split(v: Any) -> Any:
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return v


@dataclass
class ReportConfig:
    """Everything :func:`xalign.report.build_report` takes, as plain values."""

    results: str = ""
    out: str = "report"
    stores: str | None = None
    metrics: list[str] | None = None
    layers: str | None = None
    langs: list[str] | None = None
    checkpoints: list[str] | None = None
    compare: list[str] | None = None
    focus_layers: str | None = None
    protocol: str | None = None
    format: list[str] = field(default_factory=lambda: ["latex", "md", "html"])
    figures: bool = True
    figure_formats: list[str] = field(default_factory=lambda: ["pdf", "svg", "png"])
    pooling: str = "mean"
    projection: str = "pca"
    decimals: int = 3
    dpi: int = 300

    def __post_init__(self) -> None:
        for name in ("metrics", "langs", "checkpoints", "compare", "format", "figure_formats"):
            setattr(self, name, _split(getattr(self, name)))
        for name in ("layers", "focus_layers"):
            v = getattr(self, name)
            if isinstance(v, list):
                setattr(self, name, ",".join(map(str, v)))
        if not self.results:
            raise ConfigError("no results table given: pass RESULTS.parquet")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
