"""Compatibility names for dashboard modules not yet moved to the library rooms.

The figure builders live in :mod:`xalign.figures` and the results-table helpers in
:mod:`xalign.results`; import them from there. This module only re-exports them for the
dashboard modules that still say ``from dashboards import figures as F`` (``app.py`` and
``tabs/`` while they are being split); delete it once none does.
"""

from __future__ import annotations

from xalign.figures import *  # noqa: F403
from xalign.figures import __all__ as _figures_all
from xalign.figures import trace_order as _trace_order
from xalign.results import (
    PROTOCOL_KEY_ORDER,
    aggregate_by_language,
    describe_protocol,
    filter_protocol,
    parse_protocols,
    protocol_options,
)

__all__ = [
    *_figures_all,
    "PROTOCOL_KEY_ORDER",
    "_trace_order",
    "aggregate_by_language",
    "describe_protocol",
    "filter_protocol",
    "parse_protocols",
    "protocol_options",
]
