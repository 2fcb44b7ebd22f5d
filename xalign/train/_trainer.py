"""The training loop: two views per row, the push/pull objective, selection, zero-shot results."""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from xalign.errors import ConfigError, DataError
from xalign.train._config import TrainConfig, check_out
from xalign.train._evaluate import (
    Encoded,
    accuracy_rows,
    encode_pairs,
    pad_batch,
    predict,
    seed_aggregate,
)
from xalign.train._losses import attention_pull_loss, embedding_push_loss, objective
from xalign.train._perturb import load_neighbours, paired_views

if TYPE_CHECKING:
    import torch

    from xalign.models import Encoder
    from xalign.train._tasks import TaskData

__all__ = ["SeedResult", "TrainResult", "train"]

log = logging.getLogger("xalign.train")

_LOG_COLUMNS = [
    "seed", "step", "epoch", "lr", "loss", "ce", "rt", "ep", "ap",
    "push_distance", "pull_mse", "pull_mse_masked", "grad_norm", "micro_batch",
    "dev_acc", "test_pooled", "best_dev", "bad_evals", "stopped", "patience", "epoch_cap",
    "seconds", "cpu_seconds",
]  # fmt: skip
_MARKER = "xalign.train"


@dataclass
class SeedResult:
    """What one seed produced."""

    seed: int
    label: str
    folder: str
    checkpoint: str | None
    selected_step: int
    steps: int
    dev_acc: float
    test_acc: dict[str, float]
    pooled: float
    mean: float
    seconds: float
    selected_epoch: float = float("nan")
    early_stopped: bool = False
    oracle_step: int | None = None
    oracle_pooled: float | None = None


@dataclass
class TrainResult:
    """A finished run: per-seed results, the results table, the training log, notes."""

    out: Path
    config: TrainConfig
    seeds: list[SeedResult]
    results: pd.DataFrame
    train_log: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        """A short report: accuracy per language (mean ± std over seeds), pooled and mean."""
        cfg = self.config
        sel = "ORACLE (pooled target test)" if cfg.selection == "oracle" else "English dev"
        lines = [
            f"{cfg.run_label}: {cfg.method} (terms {'+'.join(cfg.terms)}) on {cfg.task}, "
            f"{len(self.seeds)} seed(s) {[s.seed for s in self.seeds]}, checkpoint selection: {sel}"
        ]
        langs = list(self.seeds[0].test_acc)
        width = max([len(x) for x in langs] + [8])

        def fmt(vals: list[float]) -> str:
            m = float(np.mean(vals))
            s = f" ± {float(np.std(vals, ddof=1)):.3f}" if len(vals) > 1 else ""
            return f"{m:.3f}{s}"

        for lang in langs:
            lines.append(f"  {lang:<{width}}  {fmt([s.test_acc[lang] for s in self.seeds])}")
        lines.append(f"  {'pooled':<{width}}  {fmt([s.pooled for s in self.seeds])}")
        lines.append(f"  {'mean':<{width}}  {fmt([s.mean for s in self.seeds])}")
        lines.append(f"  {'dev':<{width}}  {fmt([s.dev_acc for s in self.seeds])}")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append(f"results     {self.out / 'results.parquet'}")
        lines.append(f"train log   {self.out / 'train_log.parquet'}")
        lines.append(f"config      {self.out / 'config.json'}")
        for s in self.seeds:
            if s.checkpoint:
                lines.append(f"checkpoint  {s.checkpoint}   (xalign.models.load_encoder)")
        return "\n".join(lines)


def torch_index(rows: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))


def _is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _prepare_out(cfg: TrainConfig) -> Path:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is a file; expected a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = (out / "config.json").is_file() and _MARKER in (out / "config.json").read_text(
            encoding="utf-8", errors="replace"
        )
        if not cfg.overwrite:
            raise ConfigError(
                f"--out {out}: folder exists and is not empty; pass --overwrite to replace "
                "an earlier training run there"
            )
        if not ours:
            raise ConfigError(
                f"--out {out}: folder holds something other than a training run; refusing to "
                "delete it, choose another folder"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _targets(cfg: TrainConfig, task: TaskData) -> list[str]:
    """Test languages pooled for selection and reporting (the training language only if asked)."""
    targets = [
        lang for lang in task.test if lang != task.train_lang or cfg.pooled_include_train_lang
    ]
    if not targets:
        raise DataError(
            f"no target test language besides the training language {task.train_lang!r}; "
            f"test languages: {list(task.test)}"
        )
    return targets


class _Trainer:
    """Shared state of one run (data, tokenised views, encoder); ``fit(seed)`` trains one seed."""

    def __init__(
        self, cfg: TrainConfig, task: TaskData, encoder: Encoder, views: pd.DataFrame, out: Path
    ) -> None:
        import torch

        from xalign.extract import resolve_prefix
        from xalign.models import cuda_amp_dtype

        self.torch = torch
        self.cfg = cfg
        self.task = task
        self.encoder = encoder
        self.views = views
        self.out = out
        self.notes: list[str] = []
        self.device = encoder.device
        self.L = encoder.facts.num_layers
        self.terms = cfg.terms
        if cfg.needs_attentions and cfg.ap_layer > self.L:
            raise ConfigError(
                f"--ap-layer {cfg.ap_layer} is beyond the model: {encoder.facts.name} has "
                f"L={self.L} blocks, attention layers are 1..{self.L}"
            )
        self.monitor_attn = cfg.ap_layer <= self.L
        if not self.monitor_attn and cfg.monitor_every:
            self.note(
                f"pull MSE not monitored: --ap-layer {cfg.ap_layer} is beyond the model's "
                f"{self.L} blocks"
            )
        if cfg.needs_attentions and encoder.attn_implementation != "eager":
            self.set_eager(
                f"Attention-Pull needs attention maps, which {encoder.attn_implementation} "
                "attention does not return"
            )
        self.autocast = bool(cfg.amp and self.device.type == "cuda")
        self.amp_dtype = None
        if self.autocast:
            self.amp_dtype = cuda_amp_dtype()
        self.prefix = resolve_prefix(cfg.prefix, encoder.facts.default_prefix)
        pad = encoder.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.micro = cfg.batch_size
        tok = encoder.tokenizer
        ml = min(cfg.max_length, encoder.facts.max_length)
        if ml < cfg.max_length:
            self.note(f"max_length {cfg.max_length} capped at the model's {ml}")
        self.max_length = ml

        def enc(df: pd.DataFrame, a: str = "text_a", b: str = "text_b") -> Encoded:
            tb = df[b].tolist() if task.pair else None
            return encode_pairs(tok, df[a].tolist(), tb, prefix=self.prefix, max_length=ml)

        self.enc_orig = enc(task.train)
        self.enc_pert = enc(views, "pert_a", "pert_b")
        self.example = views["example"].to_numpy()
        self.labels = torch.tensor(views["label"].to_numpy(), dtype=torch.long)
        self.enc_dev = enc(task.dev)
        self.enc_test = {lang: enc(df) for lang, df in task.test.items()}
        self.targets = _targets(cfg, task)
        # --oracle-limit-per-lang: fixed random rows of each target's test set for the oracle
        self.oracle_rows: dict[str, np.ndarray] = {}
        if cfg.record_oracle and cfg.oracle_limit_per_lang:
            rng = np.random.default_rng(cfg.data_seed)
            for lang in self.targets:
                m = len(task.test[lang])
                k = min(cfg.oracle_limit_per_lang, m)
                self.oracle_rows[lang] = np.sort(rng.permutation(m)[:k])
        self.has_views = cfg.neighbours is not None
        self.monitor_rows: np.ndarray | None = None
        if self.has_views and cfg.monitor_every:
            first = views.index[views["view"] == 0].to_numpy()
            self.monitor_rows = first[: cfg.monitor_size]
        self.init_state = {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}

    # ------------------------------------------------------------------ helpers

    def note(self, msg: str) -> None:
        if msg not in self.notes:
            log.warning(msg)
            self.notes.append(msg)

    def set_eager(self, why: str) -> None:
        prev = getattr(self.encoder.model.config, "_attn_implementation", None) or (
            self.encoder.attn_implementation
        )
        self.encoder.model.set_attn_implementation("eager")
        self.encoder.attn_implementation = "eager"
        self.note(f"switched attention from {prev} to eager: {why}")

    def _ctx(self) -> Any:
        torch = self.torch
        if self.autocast:
            return torch.autocast("cuda", dtype=self.amp_dtype)
        return torch.autocast("cpu", enabled=False)

    def _batch(
        self, rows: np.ndarray
    ) -> tuple[tuple[Any, Any, Any], tuple[Any, Any, Any], torch.Tensor]:
        rows = np.array(rows, dtype=np.int64)  # a writable copy (torch refuses read-only views)
        ex = self.example[rows]
        lens = [len(self.enc_pert.ids[r]) for r in rows] + [len(self.enc_orig.ids[e]) for e in ex]
        length = self.max_length if self.cfg.pad_to_max_length else max(lens)
        pert = pad_batch(self.enc_pert, rows, pad_id=self.pad_id, length=length, device=self.device)
        orig = pad_batch(self.enc_orig, ex, pad_id=self.pad_id, length=length, device=self.device)
        return pert, orig, self.labels[torch_index(rows)].to(self.device)

    def _encode(
        self, clf: Any, view: tuple[Any, Any, Any], *, hidden: bool, attn: bool
    ) -> tuple[Any, Any]:
        logits, out = clf(*view, output_hidden_states=hidden, output_attentions=attn)
        if attn:
            maps = out.attentions
            if not maps or len(maps) < self.cfg.ap_layer or maps[self.cfg.ap_layer - 1] is None:
                self.set_eager("the model returned no attention maps")
                logits, out = clf(*view, output_hidden_states=hidden, output_attentions=attn)
        return logits, out

    # ------------------------------------------------------------------ one step

    def _micro(self, clf: Any, rows: np.ndarray, weight: float, scaler: Any) -> dict[str, float]:
        terms = set(self.terms)
        hidden = "ep" in terms
        attn = "ap" in terms
        pert, orig, y = self._batch(rows)
        lp: Any = None
        lo: Any = None
        out_p: Any = None
        out_o: Any = None
        with self._ctx():
            if terms & {"ce", "ep", "ap"}:
                lp, out_p = self._encode(clf, pert, hidden=hidden, attn=attn)
            if terms & {"rt", "ep", "ap"}:
                lo, out_o = self._encode(clf, orig, hidden=hidden, attn=attn)
        k = self.cfg.ap_layer - 1
        res = objective(
            terms=self.terms,
            labels=y,
            logits_pert=lp.float() if lp is not None else None,
            logits_orig=lo.float() if lo is not None else None,
            emb_orig=out_o.hidden_states[0].float() if hidden else None,
            emb_pert=out_p.hidden_states[0].float() if hidden else None,
            mask_orig=orig[1],
            mask_pert=pert[1],
            attn_orig=out_o.attentions[k].float() if attn else None,
            attn_pert=out_p.attentions[k].float() if attn else None,
            alpha=self.cfg.alpha,
            beta=self.cfg.beta,
            ap_mask=self.cfg.ap_mask,  # type: ignore[arg-type]
        )
        loss = res.total * weight
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        nan = float("nan")
        return {
            "loss": float(res.total.detach()),
            "ce": nan if res.ce is None else res.ce,
            "rt": nan if res.rt is None else res.rt,
            "ep": nan if res.push_distance is None else -res.push_distance,
            "ap": nan if res.pull_mse is None else res.pull_mse,
        }

    def _step(
        self, clf: Any, opt: Any, sched: Any, scaler: Any, rows: np.ndarray
    ) -> dict[str, float]:
        torch = self.torch
        while True:
            opt.zero_grad(set_to_none=True)
            agg: dict[str, float] = {}
            try:
                for s in range(0, len(rows), self.micro):
                    chunk = rows[s : s + self.micro]
                    vals = self._micro(clf, chunk, len(chunk) / len(rows), scaler)
                    for key, v in vals.items():
                        agg[key] = agg.get(key, 0.0) + v * len(chunk) / len(rows)
                break
            except Exception as err:
                if not _is_oom(err) or self.micro <= 1:
                    raise
                opt.zero_grad(set_to_none=True)
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                old, self.micro = self.micro, max(1, self.micro // 2)
                per_step = math.ceil(self.cfg.effective_batch / self.micro)
                self.note(
                    f"out of memory with micro-batch {old}: halved to {self.micro} "
                    f"({per_step} micro-batches per step, effective batch "
                    f"{self.cfg.effective_batch} kept)"
                )
        agg["lr"] = float(sched.get_last_lr()[0])
        if scaler is not None:
            scaler.unscale_(opt)
        params = [p for g in opt.param_groups for p in g["params"]]
        max_norm = self.cfg.max_grad_norm if self.cfg.max_grad_norm > 0 else float("inf")
        agg["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        sched.step()
        agg["micro_batch"] = self.micro
        return agg

    # ------------------------------------------------------------------ measuring

    def monitor(self, clf: Any) -> dict[str, float]:
        """Push distance and pull MSE on the fixed monitor rows (eval mode, no dropout)."""
        torch = self.torch
        nan = float("nan")
        if self.monitor_rows is None or not len(self.monitor_rows):
            return {"push_distance": nan, "pull_mse": nan, "pull_mse_masked": nan}
        # What the model really runs (an Encoder's attribute may disagree with its config).
        prev = getattr(self.encoder.model.config, "_attn_implementation", None) or "sdpa"
        if self.monitor_attn and prev != "eager":
            self.encoder.model.set_attn_implementation("eager")
        was_training = clf.training
        clf.eval()
        try:
            pert, orig, _ = self._batch(self.monitor_rows)
            with torch.inference_mode(), self._ctx():
                _, out_p = clf(
                    *pert, output_hidden_states=True, output_attentions=self.monitor_attn
                )
                _, out_o = clf(
                    *orig, output_hidden_states=True, output_attentions=self.monitor_attn
                )
                push = -float(
                    embedding_push_loss(
                        out_o.hidden_states[0].float(),
                        out_p.hidden_states[0].float(),
                        orig[1],
                        pert[1],
                    )
                )
                pull = pull_m = nan
                if self.monitor_attn:
                    k = self.cfg.ap_layer - 1
                    a, b = out_o.attentions[k].float(), out_p.attentions[k].float()
                    pull = float(attention_pull_loss(a, b))
                    pull_m = float(
                        attention_pull_loss(a, b, mask_orig=orig[1], mask_pert=pert[1], mode="pad")
                    )
        finally:
            if self.monitor_attn and prev != "eager":
                self.encoder.model.set_attn_implementation(prev)
            clf.train(was_training)
        return {"push_distance": push, "pull_mse": pull, "pull_mse_masked": pull_m}

    def correct(self, clf: Any, enc: Encoded, df: pd.DataFrame) -> np.ndarray:
        pred = predict(
            clf,
            enc,
            pad_id=self.pad_id,
            device=self.device,
            token_budget=self.cfg.eval_token_budget,
            autocast=self.autocast,
        )
        return pred == df["label"].to_numpy()

    def evaluate(self, clf: Any, *, test: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        from tqdm.auto import tqdm

        dev = self.correct(clf, self.enc_dev, self.task.dev)
        tests: dict[str, np.ndarray] = {}
        if test:
            langs = tqdm(
                self.task.test.items(),
                total=len(self.task.test),
                desc="zero-shot test",
                unit="lang",
                leave=False,
                disable=not self.cfg.progress,
            )
            for lang, df in langs:
                tests[lang] = self.correct(clf, self.enc_test[lang], df)
        return dev, tests

    def oracle_pooled(self, clf: Any) -> float:
        """Pooled target test accuracy on the oracle subsample (``--oracle-limit-per-lang``)."""
        parts = []
        for lang in self.targets:
            rows = self.oracle_rows[lang]
            enc = self.enc_test[lang]
            sub = Encoded(
                ids=[enc.ids[r] for r in rows],
                type_ids=None if enc.type_ids is None else [enc.type_ids[r] for r in rows],
            )
            parts.append(self.correct(clf, sub, self.task.test[lang].iloc[rows]))
        return float(np.concatenate(parts).mean())

    def pooled(self, tests: dict[str, np.ndarray]) -> float:
        return float(np.concatenate([tests[t] for t in self.targets]).mean())

    # ------------------------------------------------------------------ one seed

    def fit(self, seed: int) -> tuple[SeedResult, pd.DataFrame, pd.DataFrame]:
        torch = self.torch
        from transformers import get_linear_schedule_with_warmup

        from xalign.train._model import build_classifier, save_classifier

        cfg = self.cfg
        t0 = time.perf_counter()
        c0 = time.process_time()
        self.encoder.model.load_state_dict(self.init_state)
        self.micro = cfg.batch_size
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        clf = build_classifier(
            self.encoder, num_labels=len(self.task.labels), head=cfg.head, dropout=cfg.dropout
        )
        no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
        groups: list[dict[str, Any]] = []
        for part, lr in ((clf.encoder, cfg.lr), (clf.head, cfg.head_lr or cfg.lr)):
            named = [(n, p) for n, p in part.named_parameters() if p.requires_grad]
            groups.append(
                {
                    "params": [p for n, p in named if not any(nd in n for nd in no_decay)],
                    "weight_decay": cfg.weight_decay,
                    "lr": lr,
                }
            )
            groups.append(
                {
                    "params": [p for n, p in named if any(nd in n for nd in no_decay)],
                    "weight_decay": 0.0,
                    "lr": lr,
                }
            )
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups, eps=cfg.adam_eps)
        n = len(self.views)
        eff = cfg.effective_batch
        per_epoch = math.ceil(n / eff)
        total = cfg.max_steps or per_epoch * cfg.epochs
        warmup = cfg.warmup_steps or round(cfg.warmup_ratio * total)
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
        scaler = (
            torch.amp.GradScaler("cuda")
            if self.autocast and self.amp_dtype == torch.float16
            else None
        )
        gen = torch.Generator().manual_seed(seed)
        clf.train()
        rows_log: list[dict[str, Any]] = []
        best = -1.0
        best_step = 0
        best_epoch = 0.0
        best_state: dict[str, Any] | None = None
        # early stopping watches English dev accuracy whatever the selection
        best_dev = -1.0
        bad_evals = 0
        # --record-oracle: the pooled-test-selected state of the same run
        oracle_best = -1.0
        oracle_step = 0
        oracle_state: dict[str, Any] | None = None
        if cfg.patience and not len(self.task.dev):
            raise DataError(
                f"--patience {cfg.patience}: early stopping needs English dev examples; the "
                "task has none"
            )
        label = f"{cfg.run_label}-seed{seed}"
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"train {label}", unit="step", disable=not cfg.progress)
        nan = float("nan")

        def log_row(step: int, epoch: float, vals: dict[str, Any]) -> dict[str, Any]:
            row = {c: nan for c in _LOG_COLUMNS}
            row.update({"seed": seed, "step": step, "epoch": epoch})
            row.update(vals)
            row["seconds"] = time.perf_counter() - t0
            # CPU time of this process (all threads): the idle-machine cost on a loaded one
            row["cpu_seconds"] = time.process_time() - c0
            rows_log.append(row)
            return row

        def snapshot() -> dict[str, Any]:
            return {k: v.detach().to("cpu", copy=True) for k, v in clf.state_dict().items()}

        def select(step: int, epoch: float, row: dict[str, Any]) -> None:
            nonlocal best, best_step, best_epoch, best_state, best_dev, bad_evals
            nonlocal oracle_best, oracle_step, oracle_state
            want_test = cfg.selection == "oracle" or (cfg.record_oracle and not self.oracle_rows)
            dev, tests = self.evaluate(clf, test=want_test)
            row["dev_acc"] = float(dev.mean()) if len(dev) else nan
            if tests:
                row["test_pooled"] = self.pooled(tests)
            elif self.oracle_rows:
                row["test_pooled"] = self.oracle_pooled(clf)
            score = row["test_pooled"] if cfg.selection == "oracle" else row["dev_acc"]
            if score > best or best_state is None:
                best, best_step, best_epoch = score, step, epoch
                best_state = snapshot()
            if row["dev_acc"] > best_dev:
                best_dev, bad_evals = row["dev_acc"], 0
            else:
                bad_evals += 1
            row["best_dev"], row["bad_evals"] = best_dev, bad_evals
            if cfg.record_oracle and (row["test_pooled"] > oracle_best or oracle_state is None):
                oracle_best, oracle_step = row["test_pooled"], step
                oracle_state = best_state if oracle_step == best_step else snapshot()

        log_row(
            0,
            0.0,
            {
                "lr": float(sched.get_last_lr()[0]),
                "patience": cfg.patience,
                "epoch_cap": cfg.epochs,
                **self.monitor(clf),
            },
        )
        step = 0
        epoch = 0
        stopped = False
        while step < total and not stopped:
            perm = torch.randperm(n, generator=gen).numpy()
            for b, rows in enumerate(self.epoch_batches(perm, eff, gen)):
                vals = self._step(clf, opt, sched, scaler, rows)
                step += 1
                row = log_row(step, epoch + (b + 1) / per_epoch, vals)
                if cfg.monitor_every and (step % cfg.monitor_every == 0 or step == total):
                    row.update(self.monitor(clf))
                end_of_epoch = b == per_epoch - 1
                if (
                    (cfg.eval_every and step % cfg.eval_every == 0)
                    or (not cfg.eval_every and end_of_epoch)
                    or step == total
                ):
                    select(step, row["epoch"], row)
                    if cfg.patience and row["bad_evals"] >= cfg.patience:
                        stopped = True
                        row["stopped"] = True
                bar.update(1)
                bar.set_postfix(loss=f"{vals['loss']:.3f}", refresh=False)
                if step >= total or stopped:
                    break
            epoch += 1
        bar.close()
        assert best_state is not None  # the last step is always evaluated
        stop = {
            "stopped_step": step,
            "stopped_epoch": round(rows_log[-1]["epoch"], 4),
            "early_stopped": stopped,
            "selected_epoch": round(best_epoch, 4),
        }
        clf.load_state_dict(best_state)
        dev, tests = self.evaluate(clf, test=True)
        seed_dir = self.out / f"seed-{seed}"
        seed_dir.mkdir(parents=True, exist_ok=True)
        ckpt: str | None = None
        proto = {**self.protocol(seed, best_step), **stop}
        if cfg.save_checkpoint:
            ckpt = str(
                save_classifier(
                    clf,
                    self.encoder,
                    seed_dir / "checkpoint",
                    meta={
                        "marker": _MARKER,
                        "labels": self.task.labels,
                        "prefix": self.prefix,
                        "max_length": self.max_length,
                        "label": label,
                        **proto,
                    },
                )
            )
        results = accuracy_rows(
            tests,
            targets=self.targets,
            dev_correct=dev,
            train_lang=self.task.train_lang,
            layer=self.L,
            store=ckpt or str(seed_dir),
            checkpoint=label,
            protocol=proto,
        )
        oracle_pooled = None
        if cfg.record_oracle and oracle_state is not None:
            if oracle_step == best_step:  # the same weights: the same predictions
                o_dev, o_tests = dev, tests
            else:
                clf.load_state_dict(oracle_state)
                o_dev, o_tests = self.evaluate(clf, test=True)
            oracle_pooled = self.pooled(o_tests)
            o_epoch = next(r["epoch"] for r in rows_log if r["step"] == oracle_step)
            o_proto = {
                **self.protocol(seed, oracle_step, oracle=True),
                **stop,
                "selected_epoch": round(o_epoch, 4),
            }
            oracle_rows = accuracy_rows(
                o_tests,
                targets=self.targets,
                dev_correct=o_dev,
                train_lang=self.task.train_lang,
                layer=self.L,
                store=str(seed_dir),
                checkpoint=f"{self.oracle_label}-seed{seed}",
                protocol=o_proto,
            )
            results = pd.concat([results, oracle_rows], ignore_index=True)
        log_df = pd.DataFrame(rows_log, columns=_LOG_COLUMNS)
        log_df["stopped"] = log_df["stopped"].eq(True)
        log_df.insert(1, "method", cfg.method)
        seconds = time.perf_counter() - t0
        res = SeedResult(
            seed=seed,
            label=label,
            folder=str(seed_dir),
            checkpoint=ckpt,
            selected_step=best_step,
            steps=step,
            dev_acc=float(dev.mean()) if len(dev) else nan,
            test_acc={lang: float(c.mean()) for lang, c in tests.items()},
            pooled=self.pooled(tests),
            mean=float(np.mean([tests[t].mean() for t in self.targets])),
            seconds=seconds,
            selected_epoch=float(best_epoch),
            early_stopped=stopped,
            oracle_step=oracle_step if cfg.record_oracle else None,
            oracle_pooled=oracle_pooled,
        )
        clf.zero_grad(set_to_none=True)
        del opt, best_state, oracle_state
        return res, results, log_df

    @property
    def oracle_label(self) -> str:
        return f"{self.cfg.label or self.cfg.method}-oracle"

    def epoch_batches(self, perm: np.ndarray, eff: int, gen: Any) -> list[np.ndarray]:
        """One epoch's batches of view rows: slices of ``perm``, or length-bucketed slices."""
        n = len(perm)
        if self.cfg.batching == "random":
            return [perm[b : b + eff] for b in range(0, n, eff)]
        # A bucket of 50 batches is sorted by length, then cut; a multiple of eff keeps the
        # number of batches (and the schedule) equal to the random batching's.
        lengths = self.row_lengths
        bucket = 50 * eff
        batches = []
        for c in range(0, n, bucket):
            part = perm[c : c + bucket]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[b : b + eff] for b in range(0, len(part), eff)]
        order = self.torch.randperm(len(batches), generator=gen).numpy()
        return [batches[i] for i in order]

    @property
    def row_lengths(self) -> np.ndarray:
        """Per view row: the longer of its perturbed and original tokenisation (its padding)."""
        if not hasattr(self, "_row_lengths"):
            pert = self.enc_pert.lengths
            orig = self.enc_orig.lengths[self.example]
            self._row_lengths = np.maximum(pert, orig)
        return self._row_lengths

    def protocol(self, seed: int, step: int, *, oracle: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        selection = "oracle" if oracle else cfg.selection
        p: dict[str, Any] = {
            "task": cfg.task,
            "method": cfg.method,
            "terms": list(self.terms),
            "selection": selection,
            "selected_step": step,
            "seed": seed,
            "model": self.encoder.facts.name,
            "train_lang": self.task.train_lang,
            "n_train": len(self.task.train),
            "n_views": cfg.n_views,
            "perturb_seed": cfg.perturb_seed,
            "epochs": cfg.epochs,
            "epoch_cap": cfg.epochs,
            "max_steps": cfg.max_steps,
            "patience": cfg.patience,
            "early_stopping": "english dev accuracy" if cfg.patience else "off",
            "eval_every": cfg.eval_every,
            "batching": cfg.batching,
            "lr": cfg.lr,
            "head_lr": cfg.head_lr or cfg.lr,
            "effective_batch": cfg.effective_batch,
            "max_length": self.max_length,
            # Attention-Pull's value depends on it (pad positions are in the mean)
            "padding": "max_length" if cfg.pad_to_max_length else "longest",
            "head": self.head_kind(),
            "classifier_input": "last layer",
        }
        if {"ep", "ap"} & set(self.terms):
            p.update({"alpha": cfg.alpha, "beta": cfg.beta, "ap_layer": cfg.ap_layer})
            p["ap_mask"] = cfg.ap_mask
        if oracle and self.oracle_rows:
            p["oracle_limit_per_lang"] = cfg.oracle_limit_per_lang
        if selection == "oracle":
            p["oracle"] = True
            p["selection_note"] = (
                "oracle: checkpoint chosen on pooled target-language TEST accuracy "
                "(the EAR code's behaviour); optimistic"
            )
        return p

    def head_kind(self) -> str:
        from xalign.train._model import resolve_head

        return resolve_head(self.cfg.head, self.encoder.model)


def _load_encoder(cfg: TrainConfig) -> Encoder:
    from xalign.models import load_encoder

    return load_encoder(
        cfg.model,
        device=cfg.device,
        attn_implementation="eager" if cfg.needs_attentions else "sdpa",
    )


def train(
    config: TrainConfig,
    *,
    encoder: Encoder | None = None,
    task: TaskData | None = None,
) -> TrainResult:
    """Train ``config.method`` for every seed in ``config.seeds`` and evaluate zero-shot.

    Parameters
    ----------
    config : TrainConfig
        Everything about the run (see ``python -m xalign.train --help``).
    encoder : Encoder, optional
        A loaded encoder (tests, notebooks); default ``load_encoder(config.model)``, with eager
        attention when Attention-Pull is trained. Every seed starts from its weights, and they
        are restored at the end (its attention implementation may have been switched to eager).
    task : TaskData, optional
        Loaded task data; default :func:`~xalign.train.load_task` of the config.

    Returns
    -------
    TrainResult
        Also written to ``config.out``: ``config.json``, ``results.parquet`` (all seeds and
        ``*_seed_mean`` / ``*_seed_std`` rows), ``train_log.parquet``, and per seed
        ``seed-<s>/`` with its checkpoint, log and results.

    Raises
    ------
    ConfigError
        Bad options (``--ap-layer`` beyond the model, a method that needs ``--neighbours``
        without it, an existing ``--out``).
    DataError
        Bad data or neighbour file.
    """
    from xalign import __version__
    from xalign._io import write_json, write_parquet
    from xalign.train._tasks import load_task

    cfg = config
    check_out(cfg)  # before any data or model is loaded: the same refusals as the CLI
    if cfg.needs_perturbed and not cfg.neighbours:
        raise ConfigError(
            f"method {cfg.method!r} (terms {'+'.join(cfg.terms)}) trains on perturbed views: "
            "--neighbours FILE.json is required (e.g. counterfitted_neighbors.json)"
        )
    neighbours = load_neighbours(cfg.neighbours) if cfg.neighbours else None
    if task is None:
        task = load_task(cfg)
    _targets(cfg, task)
    out = _prepare_out(cfg)
    if encoder is None:
        encoder = _load_encoder(cfg)
    views = paired_views(task.train, neighbours, n_views=cfg.n_views, seed=cfg.perturb_seed)
    notes = list(task.notes)
    trim_summary = None
    if cfg.vocab == "task":
        from xalign.extract import resolve_prefix
        from xalign.train._trim import trim_vocabulary

        prefix = resolve_prefix(cfg.prefix, encoder.facts.default_prefix)
        texts: list[str] = []
        for df, cols in [
            (views, ("pert_a", "pert_b", "text_a", "text_b")),
            (task.dev, ("text_a", "text_b")),
        ]:
            texts += _strings(df, cols, prefix)
        for df in task.test.values():
            texts += _strings(df, ("text_a", "text_b"), prefix)
        encoder, trim_summary = trim_vocabulary(encoder, texts)
        notes.append(
            f"vocabulary trimmed to the task's tokens: {trim_summary['rows_before']} -> "
            f"{trim_summary['rows_after']} embedding rows (exact on this task's texts)"
        )
    trainer = _Trainer(cfg, task, encoder, views, out)
    seeds: list[SeedResult] = []
    frames, logs = [], []
    for seed in cfg.seeds:
        res, results, log_df = trainer.fit(seed)
        seed_dir = Path(res.folder)
        write_parquet(seed_dir / "results.parquet", results)
        write_parquet(seed_dir / "train_log.parquet", log_df)
        seeds.append(res)
        frames.append(results)
        logs.append(log_df)
    # The caller's encoder leaves as it came (the trained weights are in the checkpoints).
    encoder.model.load_state_dict(trainer.init_state)
    results = pd.concat(frames, ignore_index=True)
    # --record-oracle rows (a dev-selected run) get their own aggregate
    is_extra_oracle = results["checkpoint"].str.startswith(trainer.oracle_label + "-seed") & (
        cfg.record_oracle
    )
    aggs = [seed_aggregate(results[~is_extra_oracle], store=str(out), checkpoint=cfg.run_label)]
    if cfg.record_oracle:
        aggs.append(
            seed_aggregate(
                results[is_extra_oracle], store=str(out), checkpoint=trainer.oracle_label
            )
        )
    all_results = pd.concat([results, *aggs], ignore_index=True)
    train_log = pd.concat(logs, ignore_index=True)
    notes += trainer.notes
    write_parquet(out / "results.parquet", all_results)
    write_parquet(out / "train_log.parquet", train_log)
    resolved = {
        "marker": _MARKER,
        "xalign_version": __version__,
        "terms": trainer.terms,
        "run_label": cfg.run_label,
        "prefix": trainer.prefix,
        "head": trainer.head_kind(),
        "attn_implementation": encoder.attn_implementation,
        "max_length": trainer.max_length,
        "micro_batch_final": trainer.micro,
        "targets": trainer.targets,
        "encoder": encoder.facts.to_dict(),
        "task": task.summary(),
        "views": {"rows": len(views), "changed": int((views["pert_a"] != views["text_a"]).sum())},
        "vocab_trimmed": trim_summary,
        "seeds": {
            str(s.seed): {
                "selected_step": s.selected_step,
                "selected_epoch": s.selected_epoch,
                "early_stopped": s.early_stopped,
                "dev_acc": s.dev_acc,
                "oracle_step": s.oracle_step,
                "oracle_pooled": s.oracle_pooled,
                "steps": s.steps,
                "seconds": round(s.seconds, 1),
                "checkpoint": s.checkpoint,
            }
            for s in seeds
        },
        "notes": notes,
    }
    write_json(out / "config.json", {**cfg.to_dict(), "resolved": resolved})
    return TrainResult(
        out=out, config=cfg, seeds=seeds, results=all_results, train_log=train_log, notes=notes
    )


def _strings(df: pd.DataFrame, cols: tuple[str, ...], prefix: str) -> list[str]:
    out: list[str] = []
    for c in cols:
        if c not in df.columns:
            continue
        vals = [v for v in df[c].tolist() if isinstance(v, str)]
        # The prefix goes before the first text of an input only (see encode_pairs).
        first = c in ("text_a", "pert_a")
        out += [prefix + v for v in vals] if first else vals
    return out
