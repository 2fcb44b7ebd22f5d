"""2-D projections of sentence embeddings (PCA, UMAP, t-SNE), cached in the stores.

Projections are comparable across layers and checkpoints (one shared PCA fit; UMAP and t-SNE
layouts chained by initialisation and Procrustes-aligned, see :class:`Projector`), seeded, and
sampled per language with the sampled rows recorded. ``python -m xalign.project`` precomputes
them; the dashboard only reads the cache.

The public names are imported on first use, so ``python -m xalign.project --help`` and its
argument errors answer before numpy, pandas or scikit-learn are loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign._lazy import lazy_attributes

if TYPE_CHECKING:
    from xalign.project._cache import (
        find_fit,
        fit_entries,
        load_projection,
        projection_index,
        read_index,
        read_projection_file,
        store_id,
        write_projections,
    )
    from xalign.project._config import METHODS, Method, ProjectConfig
    from xalign.project._projector import Projector, prepare_block, procrustes_align
    from xalign.project._run import project_stores
    from xalign.project._sample import stratified_sample

_WHERE = {
    "METHODS": "_config",
    "Method": "_config",
    "ProjectConfig": "_config",
    "Projector": "_projector",
    "find_fit": "_cache",
    "fit_entries": "_cache",
    "load_projection": "_cache",
    "prepare_block": "_projector",
    "procrustes_align": "_projector",
    "project_stores": "_run",
    "projection_index": "_cache",
    "read_index": "_cache",
    "read_projection_file": "_cache",
    "store_id": "_cache",
    "stratified_sample": "_sample",
    "write_projections": "_cache",
}

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
    "read_projection_file",
    "store_id",
    "stratified_sample",
    "write_projections",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals(), __all__)
