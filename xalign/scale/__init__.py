"""Extraction beyond one process: the same chunks on a Ray Data cluster (optional ``scale`` extra).

``python -m xalign.extract ... --engine ray [--address auto]`` or
``extract(ExtractConfig(..., engine="ray"))``. Ray is imported only when used.
"""

from __future__ import annotations

from xalign.scale._ray import SHARDS, extract_ray, read_shard, shard_path, write_shard

__all__ = ["SHARDS", "extract_ray", "read_shard", "shard_path", "write_shard"]
