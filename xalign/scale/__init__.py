"""The Ray engine's names under their first home (kept for existing imports).

The engine itself lives in :mod:`xalign.extract` beside the local one
(:class:`xalign.extract.RayEngine`); ``python -m xalign.extract ... --engine ray`` or
``extract(ExtractConfig(..., engine="ray"))`` runs it. Ray is imported only when used
(optional ``scale`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign.extract import SHARDS, RayEngine, read_shard, shard_path, write_shard

if TYPE_CHECKING:
    from xalign.data import Corpus
    from xalign.extract import ExtractConfig, ExtractSummary
    from xalign.models import Encoder
    from xalign.store import Store

__all__ = ["SHARDS", "RayEngine", "extract_ray", "read_shard", "shard_path", "write_shard"]


def extract_ray(
    config: ExtractConfig, corpus: Corpus, encoder: Encoder, t0: float
) -> tuple[Store, ExtractSummary]:
    """:meth:`xalign.extract.RayEngine.run`: the chunks of ``config`` on a Ray cluster."""
    return RayEngine().run(config, corpus, encoder, t0)
