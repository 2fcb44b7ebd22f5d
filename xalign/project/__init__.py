"""2-D projections of sentence embeddings (PCA, UMAP, t-SNE), cached in the stores.

Projections are comparable across layers and checkpoints (one shared PCA fit; UMAP and t-SNE
layouts chained by initialisation and Procrustes-aligned, see :class:`Projector`), seeded, and
sampled per language with the sampled rows recorded. ``python -m xalign.project`` precomputes
them; the dashboard only reads the cache.
"""

from __future__ import annotations

from xalign.project._cache import (
    find_fit,
    fit_entries,
    load_projection,
    projection_index,
    read_index,
    store_id,
    write_projections,
)
from xalign.project._projector import METHODS, Method, Projector, prepare_block, procrustes_align
from xalign.project._run import ProjectConfig, project_stores
from xalign.project._sample import stratified_sample

__all__ = [
    "METHODS",
    "Method",
    "ProjectConfig",
    "Projector",
    "find_fit",
    "fit_entries",
    "load_projection",
    "prepare_block",
    "procrustes_align",
    "project_stores",
    "projection_index",
    "read_index",
    "store_id",
    "stratified_sample",
    "write_projections",
]
