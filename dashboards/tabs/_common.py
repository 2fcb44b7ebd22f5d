"""What every tab shares: styles, small widgets, input validation and the callback wrapper.

Every callback is registered through :func:`callback`, which turns any failure (a crafted
request, a damaged store, an unreadable file) into a message in the page instead of an HTTP
500; inputs are validated first (:func:`as_int`, :func:`as_str`, ...) so the message says
which control holds what.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection
from typing import Any

from dash import Dash, Output, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboards._catalog import Catalog
from xalign import figures as F
from xalign.errors import ConfigError, XAlignError

# the app's logger: failures are logged under the name they always had
log = logging.getLogger("dashboards.app")

#: Longest search text (characters) the sentence pickers accept.
MAX_SEARCH = 200
#: Longest list (languages, lasso rows) a control may send.
MAX_LIST = 100_000
#: Projection methods the cluster view offers.
METHODS = ("pca", "umap", "tsne")

BOX = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "8px", "margin": "6px 0"}
ROW = {"display": "flex", "gap": "12px", "alignItems": "center", "flexWrap": "wrap"}
MSG = {
    "background": "#FFF8E1",
    "border": "1px solid #E6C200",
    "padding": "8px 12px",
    "borderRadius": "6px",
    "margin": "6px 0",
    "fontFamily": "monospace",
    "whiteSpace": "pre-wrap",
}
ERR = {**MSG, "background": "#FDECEA", "border": "1px solid #D55E00"}


# ---------------------------------------------------------------- widgets


def labelled(label: str, child: Any, width: str | None = None) -> html.Div:
    """``child`` under a small grey label."""
    style = {"display": "flex", "flexDirection": "column", "minWidth": width or "140px"}
    return html.Div(
        [html.Label(label, style={"fontSize": "12px", "color": "#555"}), child], style=style
    )


def graph_config(name: str, *, fmt: str = "png") -> Any:
    """A graph's plotly config (download button file name and format)."""
    # typed Any: dcc.Graph's stubs want its own Config type, plotly's config is a plain dict
    return F.graph_config(name, fmt=fmt)


def graph(gid: str, height: str = "560px") -> dcc.Graph:
    """An empty graph that a callback fills."""
    return dcc.Graph(
        id=gid,
        figure=F.fig_empty(""),
        config=graph_config(f"xalign-{gid}"),
        style={"height": height},
        clear_on_unhover=True,
    )


def msg(text: str | None, *, error: bool = False) -> Any:
    """A message box (None when there is nothing to say)."""
    if not text:
        return None
    return html.Div(text, style=ERR if error else MSG)


# ---------------------------------------------------------------- input validation


def short(value: Any, n: int = 60) -> str:
    """``repr(value)`` cut to ``n`` characters."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def as_int(value: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """A whole number from a control (int, integral float or digits), within ``lo..hi``."""
    v = value
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    elif isinstance(v, str) and 0 < len(v.strip()) <= 12 and v.strip().lstrip("-").isdigit():
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{what} {short(value)}: expected a whole number")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{what} {v} is out of range {lo}..{hi}")
    return v


def as_str(
    value: Any, what: str, *, allowed: Collection[str] | None = None, optional: bool = False
) -> Any:
    """A text value from a control (None allowed when ``optional``), one of ``allowed``."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 1024:
        raise ConfigError(f"{what} {short(value)}: expected a text value")
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{what}={value!r}: allowed values are {', '.join(map(str, allowed))}")
    return value


def str_list(value: Any, what: str) -> list[str] | None:
    """A list of texts (language filter...), None for empty; anything else is refused."""
    if value is None or value == []:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, list)
        or len(value) > MAX_LIST
        or not all(isinstance(x, str) and len(x) <= 1024 for x in value)
    ):
        raise ConfigError(f"{what} {short(value)}: expected a list of texts")
    return value


def int_list(value: Any) -> list[int] | None:
    """Row numbers of a box/lasso selection; anything that is not one is dropped."""
    if not isinstance(value, list):
        return None
    return [int(x) for x in value[:MAX_LIST] if isinstance(x, int) and not isinstance(x, bool)]


def as_row(catalog: Catalog, rel: str, row: Any, what: str = "row") -> int:
    """A row number of store ``rel``."""
    n = len(catalog.rows(rel))
    return as_int(row, f"{what} of {rel}", lo=0, hi=n - 1)


def as_layer(catalog: Catalog, rel: str, layer: Any) -> int:
    """A layer that store ``rel`` holds."""
    layers = catalog.store(rel).layers
    v = as_int(layer, "layer")
    if v not in layers:
        raise ConfigError(f"layer {v} is not stored in {rel} (stored: {layers})")
    return v


def search_text(search: Any) -> str | None:
    """The text typed into a sentence picker (None when empty), at most MAX_SEARCH long."""
    if search is None or search == "":
        return None
    if not isinstance(search, str):
        raise ConfigError(f"search {short(search)}: expected text")
    if len(search) > MAX_SEARCH:
        raise ConfigError(
            f"search text of {len(search):,} characters: type at most {MAX_SEARCH} characters"
        )
    return search


# ---------------------------------------------------------------- store helpers


def safe_store(catalog: Catalog, rel: Any) -> Any:
    """The store ``rel``, or None when none is chosen or it cannot be opened."""
    if not rel:
        return None
    try:
        return catalog.store(rel)
    except XAlignError:
        return None


def sentence_options(
    catalog: Catalog,
    rel: Any,
    search: Any,
    value: Any,
    rows_only: list[int] | None = None,
) -> list[dict[str, Any]]:
    """Options of a sentence picker: ``rows_only``, or the first 50 matches of ``search``
    (the first 50 rows when empty), the current ``value`` first."""
    search = search_text(search)
    s = safe_store(catalog, rel)
    if s is None:
        return []
    rows = catalog.rows(rel)
    texts = rows["text"].astype(str)
    if rows_only is not None:
        idx = [int(r) for r in rows_only]
    elif search:
        hit = texts.str.contains(search, case=False, regex=False)
        idx = list(hit.to_numpy().nonzero()[0][:50])
    else:
        idx = list(range(min(50, len(rows))))
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(rows):
        idx = [value, *[i for i in idx if i != value]]
    return [
        {"label": f"[{rows['lang'].iloc[i]}] {texts.iloc[i][:90]} (row {i})", "value": int(i)}
        for i in idx
    ]


# ---------------------------------------------------------------- the callback wrapper


def failure(name: str, e: BaseException) -> Any:
    """The message a failed callback shows in the page (the traceback goes to the log)."""
    if isinstance(e, XAlignError):
        text = f"error: {e}"
    else:
        log.exception("dashboard callback %s failed", name)
        text = (
            f"error: this view could not be updated ({type(e).__name__}: {short(str(e), 300)}); "
            "the server log has the details"
        )
    return msg(text[:3000], error=True)


def callback(
    app: Dash,
    fn: Callable[..., Any],
    *deps: Any,
    bind: tuple[Any, ...] = (),
    message: int | None = None,
    **kwargs: Any,
) -> None:
    """Register ``fn`` as a callback of ``app`` (``app.callback`` that never answers 500).

    Dash calls ``fn(*bind, *values)``: ``bind`` holds what the callback needs besides the
    component values (the catalog, the root as shown). Any exception (bad input, a damaged
    store, an unreadable file) becomes an error message: in output number ``message`` when
    the callback has a message output, else in an error slot of its own (``{"type":
    "cb-error", "cb": name}``, shown at the top of the page and cleared by the callback's
    next success); the other outputs are left unchanged. The wrapped function's
    ``__wrapped__`` is ``fn`` with ``bind`` applied.
    """
    outputs = [d for d in deps if isinstance(d, Output)]
    rest = [d for d in deps if not isinstance(d, Output)]
    n = len(outputs)
    name = fn.__name__.strip("_")
    target = functools.partial(fn, *bind) if bind else fn
    slot = None
    if message is None:
        slot = Output({"type": "cb-error", "cb": name}, "children")
        app._xalign_error_slots.append(name)  # type: ignore[attr-defined]

    @functools.wraps(fn)
    def run(*args: Any) -> Any:
        try:
            result = target(*args)
        except PreventUpdate:
            raise
        except Exception as e:
            res = [no_update] * n
            if message is None:
                res.append(failure(name, e))
            else:
                res[message] = failure(name, e)
            return res if len(res) > 1 else res[0]
        if slot is None:
            return result
        return [*(result if n > 1 else [result]), None]

    run.__wrapped__ = target  # type: ignore[attr-defined]
    app.callback(*outputs, *([slot] if slot else []), *rest, **kwargs)(run)
