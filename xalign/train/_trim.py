"""Vocabulary trimming: keep only the embedding rows a set of texts uses (exact on those texts).

Multilingual encoders spend most of their parameters on the input embedding (e5-small: 96 M of
118 M in its 250 k × 384 word-embedding matrix). Fine-tuning on CPU then pays for the dense
gradient, clipping and AdamW update of every row, although only the rows of tokens that occur
get a non-zero gradient. With weight decay 0, AdamW never moves a row whose gradient has always
been zero (its moments stay 0), so dropping the rows that no text of a task uses changes
nothing the task can see: the trimmed model gives the same outputs on those texts, trains the
same way and is an ordinary Hugging Face folder (re-indexed tokenizer + smaller embedding).
Texts outside the set may contain tokens that are gone: they become ``unk``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from xalign.errors import ConfigError

if TYPE_CHECKING:
    from xalign.models import Encoder

__all__ = ["trim_vocabulary"]

_ROBERTA_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert"})


def _remap_processor(node: Any, old2new: dict[int, int]) -> Any:
    """Re-index the special-token ids inside a (possibly nested) post-processor JSON."""
    if isinstance(node, list):
        return [_remap_processor(x, old2new) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "ids" and isinstance(v, list) and all(isinstance(i, int) for i in v):
            out[k] = [old2new[i] for i in v]
        elif k in ("sep", "cls") and isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
            out[k] = [v[0], old2new[v[1]]]
        else:
            out[k] = _remap_processor(v, old2new)
    return out


def trim_vocabulary(encoder: Encoder, texts: Iterable[str]) -> tuple[Encoder, dict[str, Any]]:
    """Return a copy of ``encoder`` whose vocabulary holds only the tokens ``texts`` use.

    Special and added tokens are always kept. The new tokenizer is checked to give, on every
    text, exactly the old token ids mapped to the new ones.

    Parameters
    ----------
    encoder : Encoder
        A model with a Unigram (XLM-R, e5) or WordPiece (BERT) fast tokenizer.
    texts : iterable of str
        Every string the model will see, prefix included (each side of a pair separately).

    Returns
    -------
    (Encoder, dict)
        The trimmed encoder (its own model copy; ``facts.vocab_size`` updated and
        ``facts.extra["vocab_trimmed"]`` recording the sizes) and a summary dict.

    Raises
    ------
    ConfigError
        For other tokenizer models (BPE), or when the check fails.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = encoder.tokenizer
    texts = list(dict.fromkeys(texts))
    tj = json.loads(tok.backend_tokenizer.to_str())
    model_json = tj["model"]
    kind = model_json.get("type")
    if kind not in ("Unigram", "WordPiece"):
        raise ConfigError(
            f"--vocab task: tokenizer model {kind!r} is not supported (Unigram or WordPiece); "
            "use --vocab full"
        )
    n_pieces = len(model_json["vocab"])
    emb: Any = encoder.model.get_input_embeddings()
    n_rows = int(emb.weight.shape[0])
    used: set[int] = set(tok.all_special_ids) | {int(t["id"]) for t in tj.get("added_tokens", [])}
    old_ids: list[list[int]] = []
    for s in range(0, len(texts), 2048):
        batch = tok(texts[s : s + 2048], add_special_tokens=True)["input_ids"]
        old_ids.extend(batch)
        for ids in batch:
            used.update(ids)
    keep = sorted(used)
    if keep and keep[-1] >= n_rows:
        raise ConfigError(f"token id {keep[-1]} is beyond the embedding matrix ({n_rows} rows)")
    old2new = {old: new for new, old in enumerate(keep)}

    new_json = copy.deepcopy(tj)
    if kind == "Unigram":
        new_json["model"]["vocab"] = [model_json["vocab"][i] for i in keep if i < n_pieces]
        if model_json.get("unk_id") is not None:
            new_json["model"]["unk_id"] = old2new[int(model_json["unk_id"])]
    else:
        inv = {int(i): p for p, i in model_json["vocab"].items()}
        new_json["model"]["vocab"] = {inv[i]: old2new[i] for i in keep if i in inv}
    for t in new_json.get("added_tokens", []):
        t["id"] = old2new[int(t["id"])]
    if new_json.get("post_processor") is not None:
        new_json["post_processor"] = _remap_processor(new_json["post_processor"], old2new)
    backend = Tokenizer.from_str(json.dumps(new_json))
    named = {
        k: v
        for k, v in {
            "bos_token": tok.bos_token,
            "eos_token": tok.eos_token,
            "unk_token": tok.unk_token,
            "sep_token": tok.sep_token,
            "pad_token": tok.pad_token,
            "cls_token": tok.cls_token,
            "mask_token": tok.mask_token,
        }.items()
        if v is not None
    }
    new_tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=tok.model_max_length, **named
    )
    new_tok.padding_side = tok.padding_side
    for s in range(0, len(texts), 2048):
        batch = new_tok(texts[s : s + 2048], add_special_tokens=True)["input_ids"]
        for j, ids in enumerate(batch):
            want = [old2new[i] for i in old_ids[s + j]]
            if ids != want:
                raise ConfigError(
                    f"--vocab task: the trimmed tokenizer splits {texts[s + j][:60]!r} "
                    "differently from the original; use --vocab full"
                )

    model: Any = copy.deepcopy(encoder.model)
    cfg = model.config
    pad_old = getattr(cfg, "pad_token_id", None)
    if cfg.model_type in _ROBERTA_TYPES and pad_old is not None and old2new[pad_old] != pad_old:
        # RoBERTa positions count from pad_token_id + 1: the pad id must not move.
        raise ConfigError("--vocab task: the pad token id would change; use --vocab full")
    index = torch.tensor(keep, dtype=torch.long, device=emb.weight.device)
    new_emb = torch.nn.Embedding(
        len(keep),
        emb.weight.shape[1],
        padding_idx=old2new[pad_old] if pad_old is not None else None,
        device=emb.weight.device,
        dtype=emb.weight.dtype,
    )
    with torch.no_grad():
        new_emb.weight.copy_(emb.weight.index_select(0, index))
    model.set_input_embeddings(new_emb)
    cfg.vocab_size = len(keep)
    for attr in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value in old2new:
            setattr(cfg, attr, old2new[value])
    if hasattr(model, "embeddings") and hasattr(model.embeddings, "padding_idx"):
        model.embeddings.padding_idx = cfg.pad_token_id

    summary = {
        "rows_before": n_rows,
        "rows_after": len(keep),
        "texts": len(texts),
        "kept_ids_sha256": hashlib.sha256(json.dumps(keep).encode()).hexdigest(),
    }
    facts = encoder.facts
    digest = hashlib.sha256(
        f"{facts.weights_hash}\0{summary['kept_ids_sha256']}".encode()
    ).hexdigest()
    new_facts = dataclasses.replace(
        facts,
        vocab_size=len(keep),
        weights_hash=digest,
        extra={**facts.extra, "vocab_trimmed": summary},
    )
    trimmed = dataclasses.replace(encoder, model=model, tokenizer=new_tok, facts=new_facts)
    return trimmed, summary
