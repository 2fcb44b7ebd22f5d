"""Pages generated from the code at build time, so they cannot drift from it.

- ``commands/<name>.md``: one page per command, from its argparse parser (every option, its
  default and help, the epilog, and the complete ``--help`` text);
- ``catalogue/<metric>.md``: one page per metric of the metric catalogue (name, group,
  direction, range, unit, meaning), with the formula and references taken from the docstring
  of the function that computes it and the protocol choices from ``docs/metrics.md``;
- ``api/<room>.md``: the public API of each room (``__all__``), rendered by mkdocstrings.

``python docs/_tools/gen.py OUT`` writes them to ``OUT`` for inspection; ``mkdocs build`` adds
them itself (``docs/_tools/hooks.py``), nothing is written to ``docs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from rst import to_markdown  # noqa: E402

# --------------------------------------------------------------------------------------------
# commands


@dataclass(frozen=True)
class Command:
    slug: str
    module: str
    argv: tuple[str, ...] = ()  # argv prefix for the --help capture (a sub-command)


COMMANDS: tuple[Command, ...] = (
    Command("xalign", "xalign.__main__"),
    Command("demo", "xalign.__main__", ("demo",)),
    Command("extract", "xalign.extract.__main__"),
    Command("metrics", "xalign.metrics.__main__"),
    Command("project", "xalign.project.__main__"),
    Command("report", "xalign.report.__main__"),
    Command("train", "xalign.train.__main__"),
    Command("neurons", "xalign.neurons.__main__"),
    Command("dashboard", "dashboards.__main__"),
)


def _help_text(cmd: Command) -> str:
    """The command's own ``--help`` output, captured in-process."""
    mod = importlib.import_module(cmd.module)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
        mod.main([*cmd.argv, "--help"])
    return buf.getvalue().rstrip()


def md_escape(text: str) -> str:
    """Plain text as Markdown that renders literally (table cells, paragraphs)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("$", "&#36;").replace("|", "&#124;")
    return re.sub(r"([\\*_\[\]#])", r"\\\1", text)


def fmt_range(r: Any) -> str:
    """A catalogue range, ``(0.0, 1.0)`` or ``(0, None)``, as ``[0, 1]`` / ``[0, ∞)``."""
    if not isinstance(r, tuple | list) or len(r) != 2:
        return str(r)

    def num(v: Any, inf: str) -> str:
        if v is None or (isinstance(v, float) and abs(v) == float("inf")):
            return inf
        return f"{v:g}" if isinstance(v, int | float) else str(v)

    lo, hi = num(r[0], "−∞"), num(r[1], "∞")
    return f"{'(' if '∞' in lo else '['}{lo}, {hi}{')' if '∞' in hi else ']'}"


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    fmt = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.option_strings:
            names = ", ".join(f"`{o}`" for o in action.option_strings)
        else:
            names = f"`{action.metavar or action.dest}` (positional)"
        if action.nargs == 0:
            value = "switch"
        elif action.choices:
            value = " \\| ".join(f"`{c}`" for c in action.choices)
        else:
            meta = action.metavar or (action.dest.upper() if action.option_strings else "")
            value = f"`{meta}`" if meta else ""
            if action.nargs in ("+", "*"):
                value += " …"
        help_text = fmt._expand_help(action) if action.help else ""
        rows.append(f"| {names} | {value} | {md_escape(' '.join(help_text.split()))} |")
    return rows


def command_page(cmd: Command) -> str:
    mod = importlib.import_module(cmd.module)
    helptext = _help_text(cmd)
    prog = "python -m xalign demo" if cmd.argv == ("demo",) else None
    lines = []
    parser = mod.build_parser() if hasattr(mod, "build_parser") and not cmd.argv else None
    prog = prog or (parser.prog if parser else f"python -m {cmd.module.rsplit('.', 1)[0]}")
    lines += [f"# `{prog}`", ""]
    doc = inspect.getdoc(mod) or ""
    if parser and parser.description:
        lines += [md_escape(parser.description), ""]
    elif doc:
        lines += [to_markdown(doc.split("\n\n")[0], page=f"commands/{cmd.slug}.md", html=False)]
        lines += [""]
    if parser:
        lines += ["## Options", "", "| option | value | meaning (and default) |", "|---|---|---|"]
        lines += _option_rows(parser)
        lines += [""]
        lines += (
            [
                "Every option can also be given in a TOML file (`--config FILE.toml`, keys as the "
                "option names with `_` for `-`); flags given on the command line win. The resolved "
                "options are written beside the output.",
                "",
            ]
            if any("--config" in a.option_strings for a in parser._actions)
            else []
        )
    lines += ["## `--help`", "", "The command's own help, as it prints it:", "", "```text"]
    lines += [helptext, "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# metrics


@dataclass(frozen=True)
class MetricSource:
    """Where a metric of the catalogue comes from: what the catalogue does not say itself."""

    group: str  # the ``--metrics`` group that computes it
    function: str  # public function of xalign.metrics whose docstring holds the formula
    anchor: str  # section of docs/metrics.md
    range: str
    unit: str


_R01 = "[0, 1]"
_RPM1 = "[-1, 1]"

#: Every metric of the catalogue: its group, computing function, reference section, range, unit.
METRIC_SOURCES: dict[str, MetricSource] = {
    "retrieval_acc_mean": MetricSource("retrieval", "tatoeba_accuracy", "retrieval", _R01,
                                       "fraction of queries"),
    "retrieval_acc": MetricSource("retrieval", "tatoeba_accuracy", "retrieval", _R01,
                                  "fraction of queries"),
    "bucc_f1": MetricSource("bucc", "bucc_evaluate", "bucc", _R01, "fraction"),
    "bucc_precision": MetricSource("bucc", "bucc_f1", "bucc", _R01, "fraction of mined pairs"),
    "bucc_recall": MetricSource("bucc", "bucc_f1", "bucc", _R01, "fraction of gold pairs"),
    "centroid_distance_scaled": MetricSource("clusters", "centroid_gaps", "gap",
                                             "[0, ∞)", "multiples of the within-language spread"),
    "centroid_distance": MetricSource("clusters", "centroid_gaps", "gap", "[0, ∞)",
                                      "the vectors' own units (Euclidean)"),
    "centroid_cosine": MetricSource("clusters", "centroid_gaps", "gap", _RPM1, "cosine"),
    "language_silhouette": MetricSource("clusters", "language_silhouette", "silhouette", _RPM1,
                                        "silhouette"),
    "davies_bouldin": MetricSource("clusters", "davies_bouldin", "davies-bouldin", "[0, ∞)",
                                   "ratio of spreads to centroid distances"),
    "translation_cosine": MetricSource("clusters", "translation_contrast", "gap", _RPM1,
                                       "cosine"),
    "random_cosine": MetricSource("clusters", "translation_contrast", "gap", _RPM1,
                                  "cosine"),
    "translation_contrast": MetricSource("clusters", "translation_contrast", "gap",
                                         "[-2, 2]", "difference of mean cosines"),
    "translation_silhouette": MetricSource("clusters", "translation_silhouette", "silhouette",
                                           _RPM1, "silhouette"),
    "lid_accuracy": MetricSource("probe", "language_id_probe", "lid-probe", _R01,
                                 "fraction of rows"),
    "lid_control_accuracy": MetricSource("probe", "language_id_probe", "lid-probe", _R01,
                                         "fraction of rows"),
    "lid_selectivity": MetricSource("probe", "language_id_probe", "lid-probe", _RPM1,
                                    "difference of accuracies"),
    "cka": MetricSource("cka", "linear_cka", "cka", _R01, "similarity index"),
    "cka_debiased": MetricSource("cka", "linear_cka", "cka", "about [0, 1] (can dip below 0)",
                                 "similarity index"),
    "cka_between_stores": MetricSource("stores", "cka_matrix", "cka", _R01, "similarity index"),
    "mean_random_cosine": MetricSource("isotropy", "mean_random_cosine", "isotropy", _RPM1,
                                       "cosine"),
    "partition_isotropy": MetricSource("isotropy", "partition_isotropy", "isotropy", _R01,
                                       "ratio"),
    "word_align_f1": MetricSource("word_align", "word_alignment_metrics", "simalign", _R01,
                                  "fraction"),
    "word_align_aer": MetricSource("word_align", "aer", "aer", _R01, "fraction"),
    "word_align_precision": MetricSource("word_align", "alignment_prf", "aer", _R01, "fraction"),
    "word_align_recall": MetricSource("word_align", "alignment_prf", "aer", _R01, "fraction"),
    "attn_align_f1": MetricSource("word_align", "attention_align", "attn-align", _R01,
                                  "fraction"),
    "attn_align_aer": MetricSource("word_align", "attention_align", "attn-align", _R01,
                                   "fraction"),
    "attn_align_precision": MetricSource("word_align", "attention_align", "attn-align",
                                         _R01, "fraction"),
    "attn_align_recall": MetricSource("word_align", "attention_align", "attn-align",
                                      _R01, "fraction"),
    "attention_pattern_corr": MetricSource("attention", "attention_alignment_similarity",
                                           "attn-agree", _RPM1, "Pearson correlation"),
    "attention_pattern_cos": MetricSource("attention", "attention_alignment_similarity",
                                          "attn-agree", _R01, "cosine"),
    "attention_entropy": MetricSource("attention", "attention_entropy", "attn-mass",
                                      "[0, ln T]", "nats"),
    "attention_mse": MetricSource("attention", "attention_distance", "attn-agree", _R01,
                                  "squared probability"),
    "attention_js": MetricSource("attention", "attention_distance", "attn-agree",
                                 "[0, ln 2]", "nats"),
    "zero_shot_acc": MetricSource("train", "xalign.train.accuracy_rows", "zero-shot", _R01,
                                  "fraction of test examples"),
    "zero_shot_acc_pooled": MetricSource("train", "xalign.train.accuracy_rows", "zero-shot",
                                         _R01, "fraction of test examples"),
    "zero_shot_acc_mean": MetricSource("train", "xalign.train.accuracy_rows", "zero-shot",
                                       _R01, "fraction (mean over languages)"),
    "dev_acc": MetricSource("train", "xalign.train.accuracy_rows", "zero-shot", _R01,
                            "fraction of dev examples"),
    "neuron_activation_prob": MetricSource("neurons", "activation_probability", "neurons",
                                           _R01, "probability"),
    "neuron_lape_mean": MetricSource("neurons", "lape", "lape", "[0, ln G]", "nats"),
    "neuron_specific_count": MetricSource("neurons", "select_language_specific",
                                          "neuron-selection", "[0, F]", "neurons"),
    "neuron_specific_share": MetricSource("neurons", "select_language_specific",
                                          "neuron-selection", _R01,
                                          "fraction of the layer's neurons"),
    "neuron_shared_count": MetricSource("neurons", "shared_neurons", "neuron-selection",
                                        "[0, F]", "neurons"),
    "neuron_specific_jaccard": MetricSource("neurons", "specific_jaccard", "neuron-overlap",
                                            _R01, "Jaccard index"),
    "neuron_specific_change": MetricSource("neurons", "compare_selections", "neuron-overlap",
                                           "[-F, F]", "neurons"),
    "neuron_specific_stability": MetricSource("neurons", "compare_selections",
                                              "neuron-overlap", _R01, "Jaccard index"),
}  # fmt: skip


def source_function(function: str) -> tuple[str, Any]:
    """``(qualified name, object)`` of a :class:`MetricSource` function: a public name of
    ``xalign.metrics``, or a dotted path (``xalign.train.accuracy_rows``)."""
    module, _, name = function.rpartition(".")
    mod = importlib.import_module(module or "xalign.metrics")
    return f"{module or 'xalign.metrics'}.{name}", getattr(mod, name, None)


_DIRECTION = {
    "higher": "**higher = better aligned**",
    "lower": "**lower = better aligned**",
    None: "no better value: a descriptive quantity, read it next to the others",
}


def catalogue() -> dict[str, Any]:
    """The metric catalogue: the results room's when it exists, else the report's."""
    for module in ("xalign.results", "xalign.report"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        metrics = getattr(mod, "METRICS", None)
        if metrics:
            return dict(metrics)
    raise ImportError("no metric catalogue found (xalign.results.METRICS / xalign.report.METRICS)")


def _field(info: Any, *names: str) -> Any:
    for n in names:
        v = getattr(info, n, None)
        if v not in (None, ""):
            return v
    return None


def _sections(doc: str) -> tuple[str, dict[str, str]]:
    """A numpydoc docstring as (description, {section title: body})."""
    parts = re.split(r"^([A-Z][A-Za-z ]+)\n-{3,}\n", doc, flags=re.M)
    sections = {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts) - 1, 2)}
    return parts[0].strip(), sections


def _protocol_snippet(group: str) -> str:
    """The 'protocol choices' part of ``docs/metrics.md`` for one metric group."""
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    m = re.search(
        rf"<!-- protocol:{re.escape(group)} -->\n(.*?)\n<!-- /protocol -->", text, flags=re.S
    )
    if m is None:
        raise KeyError(f"docs/metrics.md has no '<!-- protocol:{group} -->' block")
    return m.group(1).strip().replace("](#", "](../metrics.md#")


def metric_page(name: str, info: Any) -> str:
    src = METRIC_SOURCES.get(name)
    if src is None:
        raise KeyError(
            f"metric {name!r} of the catalogue has no entry in docs/_tools/gen.py METRIC_SOURCES"
        )
    page = f"catalogue/{name}.md"
    label = _field(info, "label") or name
    meaning = _field(info, "meaning", "description") or ""
    direction = _field(info, "direction")
    rng = fmt_range(_field(info, "range") or src.range)
    unit = _field(info, "unit") or src.unit
    group = _field(info, "group") or src.group
    citation = _field(info, "citation")
    qual, fn = source_function(src.function)
    short = qual.rpartition(".")[2]
    desc, sections = _sections(inspect.getdoc(fn) or "")
    lines = [
        f"# {md_escape(label)}",
        "",
        f"{md_escape(meaning[:1].upper() + meaning[1:])}.",
        "",
        "| | |",
        "|---|---|",
        f"| name in the results table | `{name}` |",
        f"| group (`--metrics`) | `{group}` |"
        if group != "train"
        else "| written by | `python -m xalign.train` (zero-shot evaluation) |",
        f"| direction | {_DIRECTION.get(direction, md_escape(str(direction)))} |",
        f"| range | {md_escape(str(rng))} |",
        f"| unit | {md_escape(str(unit))} |",
        f"| computed by | [`{short}`][{qual}] |",
        f"| formulas and sources | [docs/metrics.md#{src.anchor}](../metrics.md#{src.anchor}) |",
        "",
    ]
    if citation:
        lines += [f"**Citation.** {md_escape(str(citation))}", ""]
    lines += [
        f"## Formula (from the docstring of `{short}`)",
        "",
        to_markdown(desc, page=page, html=False),
        "",
        "## Protocol choices that change the number",
        "",
        "Each is recorded in the row's `protocol` JSON; see the "
        "[results table](../results.md) for how to filter by them.",
        "",
        to_markdown(_protocol_snippet(src.group), page=page, html=False),
        "",
    ]
    if "References" in sections:
        lines += ["## References", "", to_markdown(sections["References"], page=page, html=False)]
        lines += [""]
    return "\n".join(lines)


def metric_index(cat: dict[str, Any]) -> str:
    lines = [
        "# Metric catalogue",
        "",
        "Every metric that `python -m xalign.metrics` writes to the results table, with the "
        "direction that is better for cross-lingual alignment. Each page gives the formula, "
        "the range, the protocol choices that change the number and the sources; it is "
        "generated from the metric catalogue and the docstrings of the functions that compute "
        "the metric. The derivations and protocol notes that these pages cite are collected "
        "in [Formulas and sources](../metrics.md).",
        "",
        "| metric | group | direction | range | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, info in cat.items():
        src = METRIC_SOURCES.get(name)
        direction = _field(info, "direction") or "—"
        rng = fmt_range(_field(info, "range") or (src.range if src else ""))
        group = _field(info, "group") or (src.group if src else "")
        meaning = _field(info, "meaning", "description") or ""
        lines.append(
            f"| [`{name}`]({name}.md) | `{group}` | {direction} | {md_escape(str(rng))} | "
            f"{md_escape(meaning)} |"
        )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# API

ROOMS: tuple[tuple[str, str], ...] = (
    ("data", "Corpora, readers, language codes, the bundled sample"),
    ("models", "Loading encoders (the bundled e5-small, any Hugging Face model)"),
    ("extract", "Extraction: corpus + encoder → store"),
    ("store", "Reading and writing stores"),
    ("metrics", "Alignment metrics on arrays, and their runner over stores"),
    ("results", "The results table: columns, protocol JSON, the metric catalogue"),
    ("project", "2-D projections (PCA, UMAP, t-SNE) cached in the store"),
    ("figures", "Plotly figures shared by the report and the dashboard"),
    ("report", "Reports: tables, figures, provenance"),
    ("train", "Push/pull and baseline fine-tuning, zero-shot evaluation"),
    ("neurons", "Language-specific feed-forward neurons: summary and ablation"),
    ("scale", "The Ray engine"),
)


def api_rooms() -> list[tuple[str, str, list[str]]]:
    """Rooms that exist in this checkout, with their public names."""
    out = []
    for room, title in ROOMS:
        try:
            mod = importlib.import_module(f"xalign.{room}")
        except ImportError as e:
            if e.name == f"xalign.{room}":
                continue
            raise
        out.append((room, title, sorted(getattr(mod, "__all__", []))))
    return out


def api_page(room: str, title: str, names: list[str]) -> str:
    mod = importlib.import_module(f"xalign.{room}")
    doc = inspect.getdoc(mod) or ""
    lines = [f"# `xalign.{room}`", "", f"*{title}.*", ""]
    lines += [to_markdown(doc, page=f"api/{room}.md", html=False), ""]
    for name in names:
        lines += [f"::: xalign.{room}.{name}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def generate() -> dict[str, str]:
    """Every generated page, ``{path under docs/: Markdown}``."""
    pages: dict[str, str] = {}
    for cmd in COMMANDS:
        pages[f"commands/{cmd.slug}.md"] = command_page(cmd)
    cat = catalogue()
    pages["catalogue/index.md"] = metric_index(cat)
    for name, info in cat.items():
        pages[f"catalogue/{name}.md"] = metric_page(name, info)
    for room, title, names in api_rooms():
        pages[f"api/{room}.md"] = api_page(room, title, names)
    return pages


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write the generated documentation pages.")
    p.add_argument("out", help="folder to write the pages into")
    args = p.parse_args(argv)
    out = Path(args.out)
    for path, text in generate().items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text, encoding="utf-8")
        print(out / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
