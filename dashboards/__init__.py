"""The xalign dashboard: ``python -m dashboards --root runs/``.

Layout and callbacks only: figures come from ``xalign.figures`` (shared with
``xalign.report``), results-table queries from ``xalign.results``;
``dashboards.app.create_app`` builds the Dash app (needs ``xalign[app]``).
Importing this package imports neither Dash nor plotly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(root: str, **kwargs: Any) -> Any:
    """The Dash app serving the stores and results under ``root`` (see :mod:`dashboards.app`)."""
    try:
        from dashboards.app import create_app as _create
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the dashboard needs Dash and plotly: pip install 'xalign[app]'") from e
    return _create(root, **kwargs)
