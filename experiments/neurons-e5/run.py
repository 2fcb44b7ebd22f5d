"""Language-specific feed-forward neurons of the bundled e5-small on SIB-200 (issue 14, item 5).

Run from the repository root (needs the SIB-200 copy in ../shared/data, or --data):

    python experiments/neurons-e5/run.py                # everything; resumes what is done
    python experiments/neurons-e5/run.py --report-only  # rebuild the tables from out/

Jobs (each a ``python -m xalign...`` subprocess with one torch thread, at most --workers at a
time, each under ``/usr/bin/time -v`` with its log in out/logs/):

1. ``extract-pretrained``: ``python -m xalign.extract --neurons`` of e5-small over the SIB-200
   test sentences of the 12 languages below (9 scripts), store out/stores/pretrained;
2. ``train-pushpull``: ``python -m xalign.train --config experiments/sib200-e5/pushpull.toml``,
   seed 0 only, into out/train-pushpull (the same push/pull checkpoint as sib200-e5's);
3. ``extract-pushpull``: the same extraction of that checkpoint (store out/stores/pushpull);
4. ``ablate-<lang>-specific`` / ``ablate-<lang>-random``: ``python -m xalign.neurons ablate``
   of the pretrained store with ``<lang>``'s specific neurons zeroed, and with as many random
   neurons in the same layers (``--control random --seed 0``), measured at block 12.

Then it writes, in this folder (committed, small): ``results.parquet`` (results schema:
``neuron_rows`` of both stores, ``neuron_change_rows`` pretrained → pushpull), ``ablation.csv``
(one row per ablation, from the ``.ablation.json`` files) and ``summary.md`` (the tables).
A job whose output is complete is skipped; an interrupted extraction resumes from its last
chunk. Timings and peak memory per job go to out/timings.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LANGS = (
    "eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "rus_Cyrl", "zho_Hans",
    "jpn_Jpan", "arb_Arab", "hin_Deva", "kor_Hang", "ell_Grek", "tha_Thai",
)  # fmt: skip
#: ablated languages (store codes): the Latin-script language and the other-script language
#: with the most specific neurons in the pretrained store (fra 69, hin 58 of 184 selected)
ABLATE = ("fra", "hin")
MAX_LENGTH = 128
MEASURE_LAYER = 12
SEED = 0
TRAIN_CONFIG = ROOT / "experiments" / "sib200-e5" / "pushpull.toml"


# ----------------------------------------------------------------------------- jobs
def _store_complete(path: Path) -> bool:
    m = path / "manifest.json"
    return m.is_file() and json.loads(m.read_text()).get("status") == "complete"


def _extract_argv(model: str, data: Path, out: Path, label: str) -> list[str]:
    return [
        sys.executable, "-m", "xalign.extract", "--model", model, "--data", f"sib200:{data}",
        "--split", "test", "--langs", ",".join(LANGS), "--layers", "all", "--pooling", "mean",
        "--max-length", str(MAX_LENGTH), "--prefix", "query", "--neurons", "--label", label,
        "--out", str(out), "--device", "cpu", "--no-progress",
    ]  # fmt: skip


def _rel(p: Path | str) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def jobs(out: Path, data: Path) -> list[dict]:
    """Every job: name, argv, dependencies, and the output that means it is done."""
    stores = out / "stores"
    ckpt = out / "train-pushpull" / f"seed-{SEED}" / "checkpoint"
    js = [
        dict(name="extract-pretrained", deps=[],
             done=lambda: _store_complete(stores / "pretrained"),
             argv=_extract_argv("e5-small", data, stores / "pretrained", "pretrained")),
        dict(name="train-pushpull", deps=[],
             done=lambda: (out / "train-pushpull" / "results.parquet").is_file() and ckpt.is_dir(),
             argv=[sys.executable, "-m", "xalign.train", "--config", str(TRAIN_CONFIG),
                   "--data", str(data), "--seeds", str(SEED), "--out", str(out / "train-pushpull"),
                   "--overwrite", "--no-progress"]),
    ]  # fmt: skip
    # listed before the ablations: when training ends, the critical path goes on first
    js.append(
        dict(name="extract-pushpull", deps=["train-pushpull"],
             done=lambda: _store_complete(stores / "pushpull"),
             argv=_extract_argv(str(ckpt), data, stores / "pushpull", "pushpull"))
    )  # fmt: skip
    for lang in ABLATE:
        for kind in ("specific", "random"):
            dest = out / "ablate" / f"{lang}-{kind}"
            argv = [sys.executable, "-m", "xalign.neurons", "ablate", "--store",
                    str(stores / "pretrained"), "--lang", lang, "--out", str(dest),
                    "--layer", str(MEASURE_LAYER), "--device", "cpu", "--no-progress"]  # fmt: skip
            if kind == "random":
                argv += ["--control", "random", "--seed", str(SEED)]
            report = dest.parent / f"{dest.name}.ablation.json"
            js.append(dict(name=f"ablate-{lang}-{kind}", deps=["extract-pretrained"], argv=argv,
                           done=lambda r=report: r.is_file()))  # fmt: skip
    return js


def _time_v(log: Path) -> dict:
    """Wall seconds and peak RSS (MiB) from the ``/usr/bin/time -v`` lines of a job log."""
    text = log.read_text(encoding="utf-8", errors="replace")
    out: dict = {}
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        parts = [float(x) for x in m.group(1).split(":")]
        out["wall_s"] = sum(v * 60**i for i, v in enumerate(reversed(parts)))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_mib"] = int(m.group(1)) / 1024
    m = re.search(r"Percent of CPU this job got: (\d+)%", text)
    if m:
        out["cpu_percent"] = int(m.group(1))
    return out


def run_jobs(out: Path, data: Path, workers: int, dry_run: bool = False) -> dict:
    """Run the jobs not yet done, dependencies first, ``workers`` at a time."""
    if dry_run:
        for j in jobs(out, data):
            state = "done" if j["done"]() else "to do"
            print(f"{j['name']} ({state}): {' '.join(j['argv'])}")
        sys.exit(0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings_file = out / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    pending = []
    finished = set()
    for j in jobs(out, data):
        if j["done"]():
            print(f"  skip  {j['name']} (done)", flush=True)
            finished.add(j["name"])
            log = logs / f"{j['name']}.log"
            if j["name"] not in timings and log.is_file() and _time_v(log):
                timings[j["name"]] = {**_time_v(log), "note": "from an earlier run's log"}
        else:
            pending.append(j)
    timings_file.write_text(json.dumps(timings, indent=2))
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").is_file() else []
    running: list[tuple[dict, subprocess.Popen, float]] = []
    failed: list[str] = []
    while pending or running:
        ready = [j for j in pending if all(d in finished for d in j["deps"])]
        while ready and len(running) < workers:
            j = ready.pop(0)
            pending.remove(j)
            log = open(logs / f"{j['name']}.log", "w", encoding="utf-8")  # noqa: SIM115
            print(f"  start {j['name']}: {' '.join(j['argv'])}", flush=True)
            proc = subprocess.Popen(timer + j["argv"], cwd=ROOT, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)  # fmt: skip
            running.append((j, proc, time.perf_counter()))
        if not running:
            sys.exit(f"jobs {[j['name'] for j in pending]} wait on failed jobs {failed}")
        time.sleep(2)
        for item in list(running):
            j, proc, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            dt = time.perf_counter() - t0
            print(f"  done  {j['name']}: exit {proc.returncode} in {dt:.0f} s", flush=True)
            if proc.returncode:
                failed.append(j["name"])
                continue
            finished.add(j["name"])
            timings[j["name"]] = {
                "wall_s": dt, **_time_v(logs / f"{j['name']}.log"),
                "load_average_at_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
                "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            }  # fmt: skip
            timings_file.write_text(json.dumps(timings, indent=2))
    if failed:
        sys.exit(f"failed: {failed}; see {logs}")
    return timings


# ----------------------------------------------------------------------------- results
def scripts(store) -> dict[str, str]:
    """Store language code -> script, from SIB-200's own code (``lang_raw``, e.g. deu_Latn)."""
    rows = store.rows[["lang", "lang_raw"]].drop_duplicates()
    return {r.lang: r.lang_raw.split("_")[-1] for r in rows.itertuples()}


def collect(out: Path) -> None:
    """Write results.parquet and ablation.csv (in this folder) from the stores and reports."""
    import pandas as pd

    from xalign.metrics import neuron_change_rows, neuron_rows
    from xalign.results import validate_results
    from xalign.store import Store

    stores = {}
    for label in ("pretrained", "pushpull"):
        path = out / "stores" / label
        if _store_complete(path):
            stores[label] = Store.open(path)
    rows = []
    for label, st in stores.items():
        rows += neuron_rows(st, label=label)
    if len(stores) == 2:
        rows += neuron_change_rows(stores["pretrained"], stores["pushpull"],
                                   before_label="pretrained", after_label="pushpull")  # fmt: skip
    df = pd.DataFrame(rows)
    df["store"] = df["store"].map(_rel)
    df["protocol"] = df["protocol"].str.replace(str(out), _rel(out), regex=False)
    df = validate_results(df)
    df.to_parquet(HERE / "results.parquet", index=False, compression="zstd")

    recs = []
    for path in sorted((out / "ablate").glob("*.ablation.json")):
        rep = json.loads(path.read_text())["report"]
        lang = rep["lang"]
        r = rep["retrieval"]
        lid = rep["lid"]
        mine = f"{lang} vs the others"
        recs.append(
            {
                "lang": lang,
                "ablated": f"random (seed {rep['seed']})" if rep["control"] else f"{lang}-specific",
                "n_neurons": rep["n_neurons"],
                "neurons_per_layer": json.dumps(
                    dict(sorted(rep["neurons_per_layer"].items(), key=lambda kv: int(kv[0]))),
                    separators=(",", ":"),
                ),
                "layer": rep["layer"],
                "pooling": rep["pooling"],
                "retrieval_before": r[lang]["before"],
                "retrieval_after": r[lang]["after"],
                "retrieval_change": rep["retrieval_change"],
                "others_retrieval_change": rep["others_retrieval_change"],
                "others_max_abs_change": max(
                    abs(v["after_without"] - v["before_without"]) for k, v in r.items() if k != lang
                ),
                "lid_all_before": lid.get("all languages", {}).get("before"),
                "lid_all_after": lid.get("all languages", {}).get("after"),
                "lid_lang_before": lid.get(mine, {}).get("before"),
                "lid_lang_after": lid.get(mine, {}).get("after"),
                "report": _rel(path),
                "command": "python -m xalign.neurons ablate " + " ".join(_options(rep, path)),
            }
        )
    pd.DataFrame(recs).to_csv(HERE / "ablation.csv", index=False, float_format="%.6g")
    by_layer = ablation_by_layer(out)
    if by_layer is not None:
        by_layer.to_csv(HERE / "ablation_layers.csv", index=False, float_format="%.6g")


def _pair_accuracy(store, layer: int, langs: list[str]) -> dict[tuple[str, str], float]:
    """Mean-direction top-1 retrieval accuracy of every language pair at one layer."""
    import numpy as np

    from xalign.metrics import tatoeba_accuracy

    X, rows = store.sentences(pooling="mean", layer=layer, with_rows=True)
    rows = rows.reset_index(drop=True)
    pos = {g: dict(zip(d["group"], d.index, strict=True)) for g, d in rows.groupby("lang")}
    out = {}
    for i, a in enumerate(langs):
        for b in langs[i + 1 :]:
            common = [g for g in pos[a] if g in pos[b]]
            ia = np.array([pos[a][g] for g in common])
            ib = np.array([pos[b][g] for g in common])
            acc = tatoeba_accuracy(X[ia], X[ib], backend="numpy")["acc_mean"]
            out[(a, b)] = out[(b, a)] = float(acc)
    return out


def ablation_by_layer(out: Path):
    """Every ablated store at every layer: the ablated language's mean retrieval accuracy
    against the others, and the other languages' mean over pairs without it, before/after."""
    import numpy as np
    import pandas as pd

    from xalign.store import Store

    reports = sorted((out / "ablate").glob("*.ablation.json"))
    if not reports:
        return None
    pre = Store.open(out / "stores" / "pretrained")
    langs = pre.neurons().languages
    cache: dict = {}

    def acc(store, key, layer):
        if (key, layer) not in cache:
            cache[(key, layer)] = _pair_accuracy(store, layer, langs)
        return cache[(key, layer)]

    recs = []
    for path in reports:
        rep = json.loads(path.read_text())["report"]
        x = rep["lang"]
        new = Store.open(out / "ablate" / path.name.removesuffix(".ablation.json"))
        for layer in pre.layers:
            b, a = acc(pre, "pretrained", layer), acc(new, path.name, layer)
            mine = [(x, y) for y in langs if y != x]
            rest = [(u, v) for i, u in enumerate(langs) for v in langs[i + 1 :] if x not in (u, v)]
            recs.append({
                "lang": x,
                "ablated": "random" if rep["control"] else "specific",
                "layer": layer,
                "lang_before": np.mean([b[k] for k in mine]),
                "lang_after": np.mean([a[k] for k in mine]),
                "others_before": np.mean([b[k] for k in rest]),
                "others_after": np.mean([a[k] for k in rest]),
            })  # fmt: skip
    return pd.DataFrame(recs)


def _options(rep: dict, path: Path) -> list[str]:
    o = json.loads(path.read_text())["options"]
    args = ["--store", _rel(o["store"]), "--lang", o["lang"], "--out", _rel(o["out"])]
    args += ["--layer", str(o["layer"]), "--device", "cpu"]
    if o.get("control"):
        args += ["--control", o["control"], "--seed", str(o["seed"])]
    return args


# ----------------------------------------------------------------------------- report
def _md(header: list[str], rows: list[list], align: str = "---") -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + f"{align}|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return [*out, ""]


def _f(x: float, nd: int = 3, sign: bool = False) -> str:
    import math

    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def count_table(res, checkpoint: str):
    """Language × block table of ``neuron_specific_count`` (ints) of one checkpoint."""
    d = res[(res["metric"] == "neuron_specific_count") & (res["checkpoint"] == checkpoint)]
    return d.pivot(index="lang", columns="layer", values="value").astype(int)


def report(out: Path, timings: dict) -> str:
    import numpy as np
    import pandas as pd

    from xalign.metrics import activation_probability, select_language_specific, specific_jaccard
    from xalign.store import Store

    res = pd.read_parquet(HERE / "results.parquet")
    pre = Store.open(out / "stores" / "pretrained")
    ns = pre.neurons()
    script = scripts(pre)
    langs = ns.languages
    layers = ns.layers
    F = int(ns.active.shape[2])
    proto = json.loads(
        res[(res["metric"] == "neuron_specific_count") & (res["checkpoint"] == "pretrained")]
        ["protocol"].iloc[0]
    )  # fmt: skip
    tok = ns.tokens[0, :, 0]
    L = []
    L += ["# neurons-e5: language-specific feed-forward neurons of e5-small (SIB-200 test)", ""]
    L += [
        f"Model: bundled e5-small ({len(layers)} blocks × {F} feed-forward neurons = "
        f"{len(layers) * F} neurons). Corpus: SIB-200 test, {len(pre.rows) // len(langs)} "
        f"sentences × {len(langs)} languages in {len(set(script.values()))} scripts, "
        f"max length {MAX_LENGTH}, prefix 'query: ', content tokens only.",
        "",
        "Selection (Tang et al. 2024, LAPE): top rate "
        f"{proto['top_rate']:g} (= {round(proto['top_rate'] * len(layers) * F)} neurons selected "
        f"over all layers), filter rate {proto['filter_rate']:g} (activation probability > "
        f"{proto['filter_value']:.4f} for some language), bar rate {proto['bar_rate']:g} "
        f"(specific to a language when its probability > {proto['bar_value']:.4f}). Shared: "
        "probability above the same bar for every language.",
        "",
    ]
    L += _md(["language", "script", "content tokens"],
             [[g, script[g], int(tok[i])] for i, g in enumerate(langs)])  # fmt: skip

    # (a) where the specific neurons sit
    p = activation_probability(ns.active, ns.tokens)
    sel = select_language_specific(
        p, top_rate=proto["top_rate"], filter_rate=proto["filter_rate"], bar_rate=proto["bar_rate"]
    )
    selected = sel.selected.sum(axis=1)
    ct = count_table(res, "pretrained").loc[langs, layers]
    shared = res[(res["metric"] == "neuron_shared_count") & (res["checkpoint"] == "pretrained")]
    shared = shared.set_index("layer")["value"].astype(int).reindex(layers)
    thirds = [layers[: len(layers) // 3], layers[len(layers) // 3 : 2 * len(layers) // 3],
              layers[2 * len(layers) // 3 :]]  # fmt: skip
    tname = [f"{t[0]}–{t[-1]}" for t in thirds]
    L += ["## (a) Language-specific neurons per block (pretrained)", ""]
    L += ["<!-- counts: pretrained -->"]
    head = ["language"] + [str(x) for x in layers] + ["total"] + [f"share {n}" for n in tname]
    body = []
    for g in langs:
        r = ct.loc[g]
        tot = int(r.sum())
        sh = [_f(r[t].sum() / tot, 2) if tot else "–" for t in thirds]
        body.append([g] + [int(v) for v in r] + [tot] + sh)
    col = ct.sum(axis=0)
    tot = int(col.sum())
    body.append(["**all (sum)**"] + [int(v) for v in col] + [tot]
                + [_f(col[t].sum() / tot, 2) for t in thirds])  # fmt: skip
    body.append(["**shared**"] + [int(v) for v in shared] + [int(shared.sum())]
                + [_f(shared[t].sum() / max(shared.sum(), 1), 2) for t in thirds])  # fmt: skip
    body.append(
        ["**selected**"] + [int(v) for v in selected] + [int(selected.sum())]
        + [_f(selected[[layers.index(x) for x in t]].sum() / selected.sum(), 2) for t in thirds]
    )  # fmt: skip
    L += _md(head, body)
    L.pop()
    L += ["<!-- /counts -->", ""]
    L += [
        "Rows: neurons specific to each language (`neuron_specific_count`); **all (sum)**: "
        "language–neuron memberships, a neuron specific to k languages counted k times; "
        "**shared**: `neuron_shared_count`; **selected**: the lowest-LAPE neurons of the "
        f"selection ({int(selected.sum())} = top rate × {len(layers) * F}; computed from the "
        "store, not a results row), each specific to "
        f"{ct.values.sum() / max(selected.sum(), 1):.1f} languages on average.",
        "",
    ]
    latin = [g for g in langs if script[g] == "Latn"]
    other = [g for g in langs if script[g] != "Latn"]
    top = thirds[-1]

    def share_top(gs):
        s = ct.loc[gs]
        return s[top].values.sum() / max(s.values.sum(), 1)

    L += [
        f"Blocks {tname[-1]} (top third) hold {col[top].sum()} of {tot} language–neuron "
        f"memberships ({col[top].sum() / tot:.0%}); blocks {tname[0]} hold "
        f"{col[thirds[0]].sum()} ({col[thirds[0]].sum() / tot:.0%}). Latin-script languages: "
        f"{int(ct.loc[latin].values.sum())} memberships ({share_top(latin):.0%} in the top "
        f"third); other scripts: {int(ct.loc[other].values.sum())} ({share_top(other):.0%}).",
        "",
    ]

    # Jaccard of the specific sets: pooled over layers, and per layer (results rows)
    jp = specific_jaccard(sel.specific, per_layer=False)
    jr = res[(res["metric"] == "neuron_specific_jaccard") & (res["checkpoint"] == "pretrained")]

    def group(a: str, b: str) -> str:
        if script[a] == script[b]:
            return f"same script ({script[a]})"
        if {script[a], script[b]} == {"Hans", "Jpan"}:
            return "Han characters shared (Hans–Jpan)"
        return "different scripts"

    pairs = [(i, j) for i in range(len(langs)) for j in range(i + 1, len(langs))]
    grp: dict[str, list] = {}
    for i, j in pairs:
        grp.setdefault(group(langs[i], langs[j]), []).append((i, j))
    L += ["### Overlap (Jaccard) of the language-specific sets", ""]
    L += ["Pooled: one set per language over all blocks; per block: mean of the per-block "
          "Jaccard rows of results.parquet (`neuron_specific_jaccard`, pairs where one set is "
          "non-empty).", ""]  # fmt: skip
    body = []
    for name, ps in sorted(grp.items()):
        vals = [jp[i, j] for i, j in ps]
        per = []
        for i, j in ps:
            d = jr[((jr["lang"] == langs[i]) & (jr["lang2"] == langs[j]))
                   | ((jr["lang"] == langs[j]) & (jr["lang2"] == langs[i]))]  # fmt: skip
            per += d["value"].tolist()
        body.append([name, len(ps), _f(float(np.nanmean(vals))), _f(float(np.nanmin(vals))),
                     _f(float(np.nanmax(vals))), _f(float(np.mean(per)) if per else np.nan),
                     len(per)])  # fmt: skip
    L += _md(["language pairs", "pairs", "pooled Jaccard mean", "min", "max",
              "per-block Jaccard mean", "per-block rows"], body)  # fmt: skip
    L += ["Pooled Jaccard, every pair:", ""]
    L += _md(["", *langs], [[a] + [_f(jp[i, j], 2) for j in range(len(langs))]
                            for i, a in enumerate(langs)])  # fmt: skip

    # (b) ablation
    abl = HERE / "ablation.csv"
    if abl.is_file() and abl.stat().st_size > 1:
        a = pd.read_csv(abl)
        L += [f"## (b) Ablation (measured at block {MEASURE_LAYER}, mean pooling)", ""]
        L += ["Retrieval: the language's mean top-1 accuracy against the 11 other languages "
              "(both directions, 204 candidates); others: mean change of the other languages "
              "over their pairs without the ablated language (and the largest absolute change "
              "of one of them). LID: 5-fold language-ID probe over all 12 languages, and a "
              "balanced binary probe of the language against an equal sample of the others.",
              ""]  # fmt: skip
        body = []
        for r in a.itertuples():
            body.append([
                r.lang, r.ablated, r.n_neurons, r.neurons_per_layer.replace('"', ""),
                f"{r.retrieval_before:.3f} → {r.retrieval_after:.3f}",
                _f(r.retrieval_change, sign=True), _f(r.others_retrieval_change, sign=True),
                _f(r.others_max_abs_change), f"{r.lid_all_before:.3f} → {r.lid_all_after:.3f}",
                f"{r.lid_lang_before:.3f} → {r.lid_lang_after:.3f}",
            ])  # fmt: skip
        L += _md(["lang", "zeroed", "neurons", "per block", "retrieval (lang)", "Δ lang",
                  "Δ others (mean)", "max |Δ| other", "LID all", "LID lang vs others"],
                 body)  # fmt: skip
        L += ["Commands (from the repository root):", "", "```"]
        L += [c for c in a["command"]] + ["```", ""]
        bl = HERE / "ablation_layers.csv"
        if bl.is_file():
            t = pd.read_csv(bl)
            t["d_lang"] = t["lang_after"] - t["lang_before"]
            t["d_others"] = t["others_after"] - t["others_before"]
            w = t.pivot_table(index="layer", columns=["lang", "ablated"],
                              values=["d_lang", "d_others"])  # fmt: skip
            base = t.groupby(["layer", "lang"])["lang_before"].first().unstack()
            xs = sorted(t["lang"].unique())
            head = ["layer"] + [f"{x} acc before" for x in xs]
            head += [f"Δ {x} ({k})" for x in xs for k in ("specific", "random")]
            head += [f"Δ others ({x} specific)" for x in xs]
            body = []

            def cell(layer, key):
                return _f(w.loc[layer, key], sign=True) if key in w.columns else "–"

            for layer in w.index:
                r = [layer] + [_f(base.loc[layer, x]) for x in xs]
                r += [cell(layer, ("d_lang", x, k)) for x in xs for k in ("specific", "random")]
                r += [cell(layer, ("d_others", x, "specific")) for x in xs]
                body.append(r)
            L += ["Retrieval change at every layer of the same ablated stores (the ablated "
                  "language's mean accuracy against the 11 others; others: the mean over the 55 "
                  "pairs without it; `ablation_layers.csv`; layer 0 = embeddings, unchanged):",
                  ""]  # fmt: skip
            L += _md(head, body)

    # (c) pretrained vs push/pull
    ch = res[res["metric"] == "neuron_specific_change"]
    if len(ch):
        L += ["## (c) Pretrained vs push/pull checkpoint (seed 0)", ""]
        pp = count_table(res, "pushpull").loc[langs, layers]
        body = [
            ["pretrained"] + [int(v) for v in ct.sum(axis=0)] + [int(ct.values.sum())],
            ["pushpull"] + [int(v) for v in pp.sum(axis=0)] + [int(pp.values.sum())],
        ]
        sh_pp = res[(res["metric"] == "neuron_shared_count") & (res["checkpoint"] == "pushpull")]
        sh_pp = sh_pp.set_index("layer")["value"].astype(int).reindex(layers)
        body += [
            ["shared, pretrained"] + [int(v) for v in shared] + [int(shared.sum())],
            ["shared, pushpull"] + [int(v) for v in sh_pp] + [int(sh_pp.sum())],
        ]
        L += ["Language–neuron memberships per block (sum over languages) and shared neurons:", ""]
        L += _md(["checkpoint"] + [str(x) for x in layers] + ["total"], body)
        L += ["<!-- counts: pushpull -->"]
        body = [[g] + [int(v) for v in pp.loc[g]] + [int(pp.loc[g].sum())] for g in langs]
        L += _md(["language"] + [str(x) for x in layers] + ["total"], body)
        L.pop()
        L += ["<!-- /counts -->", ""]
        cv = ch.pivot(index="lang", columns="layer", values="value").loc[langs, layers]
        L += ["Change |S'| − |S| per language × block (`neuron_specific_change`):", ""]
        body = [[g] + [f"{int(v):+d}" for v in cv.loc[g]] + [f"{int(cv.loc[g].sum()):+d}"]
                for g in langs]  # fmt: skip
        L += _md(["language"] + [str(x) for x in layers] + ["total"], body)
        st = res[res["metric"] == "neuron_specific_stability"]
        sm = st.groupby("layer")["value"].agg(["mean", "count"]).reindex(layers)
        L += [
            "Stability (Jaccard of a language's set before and after, "
            "`neuron_specific_stability`), mean over languages with a non-empty set:",
            "",
        ]
        L += _md(["block"] + [str(x) for x in layers],
                 [["Jaccard"] + [_f(v, 2) for v in sm["mean"]],
                  ["languages"] + [int(v) if v == v else 0 for v in sm["count"]]])  # fmt: skip
        tr = out / "train-pushpull" / "results.parquet"
        if tr.is_file():
            t = pd.read_parquet(tr)
            v = t[(t["metric"] == "zero_shot_acc_mean") & t["checkpoint"].str.contains("seed")]
            d = t[(t["metric"] == "dev_acc") & t["checkpoint"].str.contains("seed")]
            if len(v) and len(d):
                L += [f"The checkpoint: English dev accuracy {d['value'].iloc[0]:.3f}, mean "
                      f"zero-shot accuracy over sib200-e5's 19 target languages "
                      f"{v['value'].iloc[0]:.3f}.", ""]  # fmt: skip
    else:
        L += ["## (c) Pretrained vs push/pull checkpoint", "", "Not done (no pushpull store).", ""]

    if timings:
        L += ["## Wall time and peak memory per job (/usr/bin/time -v)", ""]
        nan = float("nan")
        body = [[k, _f(v.get("wall_s", nan), 0), _f(v.get("peak_rss_mib", nan), 0),
                 v.get("cpu_percent", "–"), v.get("load_average_at_end", "–")]
                for k, v in timings.items() if isinstance(v, dict)]  # fmt: skip
        L += _md(["job", "wall s", "peak RSS MiB", "CPU %", "load avg at end (1/5/15 min)"], body)
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "data" / "sib-200"),
        help="SIB-200 folder (annotated/<lang>/test.tsv) [default: %(default)s]",
    )
    p.add_argument("--out", default=str(HERE / "out"), help="output folder [default: %(default)s]")
    p.add_argument("--workers", type=int, default=2, help="parallel processes [default: 2]")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only rebuild results.parquet, ablation.csv and summary.md from out/",
    )
    p.add_argument("--dry-run", action="store_true", help="print every job's command and state")
    args = p.parse_args(argv)  # fmt: skip
    out = Path(args.out).resolve()
    # relative to the repository (where the jobs run): stores record the path they were given
    data = Path(os.path.relpath(Path(args.data).resolve(), ROOT))
    out.mkdir(parents=True, exist_ok=True)
    timings_file = out / "timings.json"
    if not args.report_only:
        if not (ROOT / data / "annotated").is_dir():
            sys.exit(f"--data {data}: no SIB-200 copy there (annotated/<lang>/test.tsv)")
        run_jobs(out, data, args.workers, args.dry_run)
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    collect(out)
    text = report(out, timings)
    (HERE / "summary.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\nwritten: {HERE / 'results.parquet'}, {HERE / 'ablation.csv'}, {HERE / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
