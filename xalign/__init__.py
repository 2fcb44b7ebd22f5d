"""xalign: how well does a multilingual encoder align languages, layer by layer?

``import xalign`` stays light (no torch, transformers, faiss, umap, dash or ray); the rooms
are imported on demand: ``xalign.data``, ``xalign.models``, ``xalign.extract``,
``xalign.store``, ``xalign.metrics``.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
