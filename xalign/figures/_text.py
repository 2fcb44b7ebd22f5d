"""Text helpers of hover labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def truncate(texts: Sequence[Any], n: int) -> list[str]:
    """Every text cut to ``n`` characters (the last one an ellipsis)."""
    return [t if len(t) <= n else t[: n - 1] + "…" for t in map(str, texts)]


def hover_escape(texts: Sequence[str]) -> list[str]:
    """Texts safe inside a hover label."""
    # Hover labels render a subset of HTML: a sentence containing "<b>" must stay text.
    return [t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for t in texts]
