"""Zero-shot evaluation: tokenised examples → predictions → accuracy rows in the results schema."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Encoded", "accuracy_rows", "encode_pairs", "predict", "seed_aggregate"]

#: Protocol keys that differ between the seeds of one run (dropped from seed aggregates).
_PER_SEED_KEYS = (
    "seed", "selected_step", "selected_epoch", "stopped_step", "stopped_epoch", "early_stopped",
)  # fmt: skip


@dataclass
class Encoded:
    """Tokenised examples without padding: per example a list of ids (and token types)."""

    ids: list[list[int]]
    type_ids: list[list[int]] | None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.ids], dtype=np.int64)


def encode_pairs(
    tokenizer: Any,
    texts_a: Sequence[str],
    texts_b: Sequence[str | None] | None,
    *,
    prefix: str,
    max_length: int,
) -> Encoded:
    """Tokenise single sentences or pairs (``prefix`` before the first text), truncated.

    Pairs are truncated ``longest_first``, as ``run_classify.py`` does via the tokenizer.
    """
    a = [prefix + t for t in texts_a]
    pairs = texts_b is not None and any(b is not None for b in texts_b)
    kwargs: dict[str, Any] = {"truncation": True, "max_length": max_length}
    ids: list[list[int]] = []
    types: list[list[int]] = []
    has_types = True
    for s in range(0, len(a), 4096):
        if pairs:
            b = list(texts_b[s : s + 4096])  # type: ignore[index]
            enc = tokenizer(a[s : s + 4096], b, **kwargs)
        else:
            enc = tokenizer(a[s : s + 4096], **kwargs)
        ids.extend(enc["input_ids"])
        if "token_type_ids" in enc:
            types.extend(enc["token_type_ids"])
        else:
            has_types = False
    return Encoded(ids=ids, type_ids=types if has_types else None)


def pad_batch(
    enc: Encoded, rows: Sequence[int] | np.ndarray, *, pad_id: int, length: int, device: Any
) -> tuple[Any, Any, Any]:
    """``(input_ids, attention_mask, token_type_ids or None)`` of ``rows``, right-padded."""
    import torch

    n = len(rows)
    ids = torch.full((n, length), pad_id, dtype=torch.long)
    mask = torch.zeros((n, length), dtype=torch.long)
    types = torch.zeros((n, length), dtype=torch.long) if enc.type_ids is not None else None
    for j, r in enumerate(rows):
        x = enc.ids[int(r)]
        ids[j, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[j, : len(x)] = 1
        if types is not None:
            types[j, : len(x)] = torch.tensor(enc.type_ids[int(r)], dtype=torch.long)  # type: ignore[index]
    to = lambda t: t.to(device) if t is not None else None  # noqa: E731
    return to(ids), to(mask), to(types)


def predict(
    clf: Any,
    enc: Encoded,
    *,
    pad_id: int,
    device: Any,
    token_budget: int = 8192,
    autocast: bool = False,
) -> np.ndarray:
    """Predicted label index per example (eval mode, length-sorted batches)."""
    import torch

    from xalign.extract import length_sorted_batches
    from xalign.models import autocast_context

    was_training = clf.training
    clf.eval()
    out = np.empty(len(enc), dtype=np.int64)
    with torch.inference_mode(), autocast_context(autocast):
        for batch in length_sorted_batches(enc.lengths, token_budget=token_budget):
            length = int(enc.lengths[batch].max())
            ids, mask, types = pad_batch(enc, batch, pad_id=pad_id, length=length, device=device)
            logits, _ = clf(ids, mask, types)
            out[batch] = logits.float().argmax(-1).cpu().numpy()
    clf.train(was_training)
    return out


def accuracy_rows(
    correct: dict[str, np.ndarray],
    *,
    targets: Sequence[str],
    dev_correct: np.ndarray | None,
    train_lang: str,
    layer: int,
    store: str,
    checkpoint: str,
    protocol: dict[str, Any],
    n_boot: int = 1000,
) -> pd.DataFrame:
    """Results rows for one checkpoint.

    ``zero_shot_acc`` per test language (the training language's own test set is included and
    flagged ``"is_train_lang": true``), ``zero_shot_acc_pooled`` (all test examples of the
    ``targets`` languages), ``zero_shot_acc_mean`` (unweighted mean over ``targets``) and
    ``dev_acc`` (the training language's dev set). CIs: 95 % percentile bootstrap over examples.
    """
    from xalign.metrics import bootstrap_ci
    from xalign.results import RESULTS_COLUMNS, protocol_json

    recs = []

    def add(metric: str, lang: str | None, values: np.ndarray, extra: dict[str, Any]) -> None:
        v = values.astype(float)
        lo, hi = bootstrap_ci(v, n_boot=n_boot, seed=0) if n_boot and len(v) else (np.nan, np.nan)
        recs.append(
            {
                "store": store,
                "checkpoint": checkpoint,
                "metric": metric,
                "layer": layer,
                "lang": lang,
                "lang2": None,
                "value": float(v.mean()),
                "n": len(v),
                "ci_low": lo,
                "ci_high": hi,
                "protocol": protocol_json({**protocol, **extra}),
            }
        )

    for lang, c in correct.items():
        add("zero_shot_acc", lang, c, {"is_train_lang": lang == train_lang})
    targets = [t for t in targets if t in correct]
    if targets:
        add(
            "zero_shot_acc_pooled",
            None,
            np.concatenate([correct[t] for t in targets]),
            {"langs": list(targets)},
        )
        recs.append(
            {
                "store": store,
                "checkpoint": checkpoint,
                "metric": "zero_shot_acc_mean",
                "layer": layer,
                "lang": None,
                "lang2": None,
                "value": float(np.mean([correct[t].mean() for t in targets])),
                "n": len(targets),
                "ci_low": np.nan,
                "ci_high": np.nan,
                "protocol": protocol_json({**protocol, "langs": list(targets)}),
            }
        )
    if dev_correct is not None and len(dev_correct):
        add("dev_acc", train_lang, dev_correct, {"split": "dev"})
    return pd.DataFrame(recs, columns=list(RESULTS_COLUMNS))


def seed_aggregate(results: pd.DataFrame, *, store: str, checkpoint: str) -> pd.DataFrame:
    """Mean and standard deviation (ddof = 1) over seeds of every (metric, lang) in ``results``.

    Rows ``<metric>_seed_mean`` and ``<metric>_seed_std`` (NaN with one seed); ``n`` = seeds.
    """
    import json

    from xalign.results import RESULTS_COLUMNS, protocol_json

    recs = []
    for (metric, lang), df in results.groupby(["metric", "lang"], dropna=False, sort=False):
        protos = [json.loads(p) for p in df["protocol"]]
        seeds = [p.get("seed") for p in protos]
        base = {k: v for k, v in protos[0].items() if k not in _PER_SEED_KEYS}
        base.update({"seeds": seeds, "aggregate": "over seeds"})
        vals = df["value"].to_numpy(dtype=float)
        for suffix, value in (
            ("seed_mean", float(vals.mean())),
            ("seed_std", float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")),
        ):
            recs.append(
                {
                    "store": store,
                    "checkpoint": checkpoint,
                    "metric": f"{metric}_{suffix}",
                    "layer": int(df["layer"].iloc[0]),
                    "lang": None if pd.isna(lang) else lang,
                    "lang2": None,
                    "value": value,
                    "n": len(vals),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "protocol": protocol_json(base),
                }
            )
    return pd.DataFrame(recs, columns=list(RESULTS_COLUMNS))
