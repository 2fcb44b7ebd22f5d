"""The dashboard's tabs, one module each: its ``layout`` and a ``register(app, catalog, ...)``
that registers its callbacks (module-level functions) through
:func:`dashboards.tabs._common.callback`.

- :mod:`~dashboards.tabs.clusters`: projected sentences per layer, two stores side by side,
  linked selection;
- :mod:`~dashboards.tabs.metrics`: a metric by layer, language × language heatmap,
  before/after difference;
- :mod:`~dashboards.tabs.retrieval`: top-k neighbours of one sentence per language;
- :mod:`~dashboards.tabs.attention`: attention maps, similarity matrix with the predicted
  word alignment, gold links, cross attention;
- :mod:`~dashboards.tabs.neurons`: language-specific feed-forward neurons by layer, their
  overlap between languages, before/after.
"""
