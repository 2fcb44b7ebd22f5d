"""Language-specific feed-forward neurons: summaries and the ablation check
(``python -m xalign.neurons``).

The statistics come from ``python -m xalign.extract --neurons`` (``Store.neurons()``), the
selection from :func:`xalign.metrics.select_language_specific` (LAPE, Tang et al. 2024);
:func:`ablate` re-extracts a store's corpus with one language's specific neurons (or a random
control set) zeroed and reports how retrieval and language identification change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xalign._lazy import lazy_attributes

if TYPE_CHECKING:
    from xalign.neurons._ablate import (
        AblationReport,
        ablate,
        language_neurons,
        random_control,
        summary,
        summary_table,
    )

_WHERE = {
    "AblationReport": "xalign.neurons._ablate",
    "ablate": "xalign.neurons._ablate",
    "language_neurons": "xalign.neurons._ablate",
    "random_control": "xalign.neurons._ablate",
    "summary": "xalign.neurons._ablate",
    "summary_table": "xalign.neurons._ablate",
}

__all__ = [
    "AblationReport",
    "ablate",
    "language_neurons",
    "random_control",
    "summary",
    "summary_table",
]

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE, globals(), __all__)
