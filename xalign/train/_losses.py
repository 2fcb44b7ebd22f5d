"""The push/pull objective of Ding et al. 2022 ("EAR"): Embedding-Push, Attention-Pull, RT.

Notation as in ``docs/push-pull.md``: x is the original view, x̃ the synonym-perturbed view,
E(·) = ``hidden_states[0]`` (the embedding layer: LayerNorm(word + position + type) + dropout),
A^(ℓ)(·) the softmax attention probabilities of block ℓ, all heads, f the classifier. The total
is the reference code's

    L = CE(f(x̃), y) + α·L_EP + CE(f(x), y) + β·L_AP,   α = 0.1, β = 1.0, ℓ = 6 (block 6).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from xalign.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "AP_MASKS",
    "TERMS",
    "LossTerms",
    "attention_pull_loss",
    "embedding_push_loss",
    "masked_mean",
    "objective",
]

Term = Literal["ce", "rt", "ep", "ap"]
#: The four terms: ``ce`` = CE(f(x̃), y), ``rt`` = CE(f(x), y) (robust target on the original
#: view), ``ep`` = α·L_EP, ``ap`` = β·L_AP.
TERMS: tuple[str, ...] = get_args(Term)
ApMask = Literal["none", "pad"]
#: ``none``: the reference MSE over the full padded map; ``pad``: xalign's masked variant.
AP_MASKS: tuple[str, ...] = get_args(ApMask)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the non-padding tokens: ``Σ_i m_i h_i / Σ_i m_i`` for ``hidden [B, T, d]``.

    Special tokens ([CLS]/[SEP], ``<s>``/``</s>``) count, as in EAR's ``utils/tools.Pooling``
    (whose denominator is clamped at 1e-9).

    >>> import torch
    >>> masked_mean(torch.tensor([[[1.0], [3.0], [100.0]]]), torch.tensor([[1, 1, 0]]))
    tensor([[2.]])
    """
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(-2) / m.sum(-2).clamp(min=1e-9)


def embedding_push_loss(
    emb_orig: torch.Tensor,
    emb_pert: torch.Tensor,
    mask_orig: torch.Tensor,
    mask_pert: torch.Tensor,
) -> torch.Tensor:
    """L_EP = −MSE(ē(x), ē(x̃)) = −(1/(B·d)) Σ_b ‖ē(x_b) − ē(x̃_b)‖², ē = :func:`masked_mean`.

    Each view is pooled with its own attention mask. Minimising L_EP pushes the two views'
    embedding-layer means apart; the term is unbounded below (α keeps it small).

    >>> import torch
    >>> e1 = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]]])
    >>> e2 = torch.tensor([[[3.0, 3.0], [3.0, 3.0], [6.0, 6.0]]])
    >>> embedding_push_loss(e1, e2, torch.tensor([[1, 1, 0]]), torch.tensor([[1, 1, 1]]))
    tensor(-4.)
    """
    a = masked_mean(emb_orig, mask_orig)
    b = masked_mean(emb_pert, mask_pert)
    return -((a - b) ** 2).mean()


def attention_pull_loss(
    attn_orig: torch.Tensor,
    attn_pert: torch.Tensor,
    *,
    mask_orig: torch.Tensor | None = None,
    mask_pert: torch.Tensor | None = None,
    mode: ApMask = "none",
) -> torch.Tensor:
    """L_AP: MSE between the two views' attention probabilities ``[B, H, T, T]`` of one block.

    ``mode="none"`` is the reference: ``(1/(B·H·T²)) Σ (A(x) − A(x̃))²`` position by position
    over the whole padded map (pad rows and columns included, no token alignment). Its value
    depends on how much padding there is: EAR pads both views to 128 tokens.

    ``mode="pad"`` (xalign's own variant, off by default) averages only over the query/key
    pairs where both views have real tokens: with ``m = mask_orig · mask_pert``,
    ``Σ m_i m_j (A − Ã)²_{hij} / (H · Σ_b Σ_ij m_i m_j)``. Positions are still compared by index.

    >>> import torch
    >>> a = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    >>> b = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    >>> attention_pull_loss(a, b)
    tensor(0.5000)
    >>> m = torch.tensor([[1, 0]])
    >>> attention_pull_loss(a, b, mask_orig=m, mask_pert=m, mode="pad")
    tensor(1.)
    """
    if attn_orig.shape != attn_pert.shape:
        raise ConfigError(
            f"attention maps of the two views differ in shape ({tuple(attn_orig.shape)} vs "
            f"{tuple(attn_pert.shape)}): pad both views of a batch to one length"
        )
    sq = (attn_orig - attn_pert) ** 2
    if mode == "none":
        return sq.mean()
    if mode != "pad":
        raise ConfigError(f"ap_mask={mode!r}: allowed values are {', '.join(AP_MASKS)}")
    if mask_orig is None or mask_pert is None:
        raise ConfigError("ap_mask='pad' needs the attention masks of both views")
    m = (mask_orig * mask_pert).to(sq.dtype)  # [B, T]
    w = m[:, None, :, None] * m[:, None, None, :]  # [B, 1, T, T]
    return (sq * w).sum() / (w.sum() * sq.shape[1]).clamp(min=1e-9)


@dataclass
class LossTerms:
    """One forward's objective: the total and every term's (unweighted) value.

    ``push_distance`` = −L_EP (MSE of the pooled embedding-layer means, ≥ 0) and
    ``pull_mse`` = L_AP; None when not computed.
    """

    total: torch.Tensor
    ce: float | None = None
    rt: float | None = None
    push_distance: float | None = None
    pull_mse: float | None = None


def objective(
    *,
    terms: Iterable[str],
    labels: torch.Tensor,
    logits_pert: torch.Tensor | None = None,
    logits_orig: torch.Tensor | None = None,
    emb_orig: torch.Tensor | None = None,
    emb_pert: torch.Tensor | None = None,
    mask_orig: torch.Tensor | None = None,
    mask_pert: torch.Tensor | None = None,
    attn_orig: torch.Tensor | None = None,
    attn_pert: torch.Tensor | None = None,
    alpha: float = 0.1,
    beta: float = 1.0,
    ap_mask: ApMask = "none",
) -> LossTerms:
    """The total loss over the chosen ``terms`` (a subset of :data:`TERMS`).

    ``total = [ce] CE(logits_pert, y) + [ep] α·L_EP + [rt] CE(logits_orig, y) + [ap] β·L_AP``
    (bracketed terms only when chosen). The inputs a term needs must be given.

    >>> import torch
    >>> y = torch.tensor([0])
    >>> out = objective(terms=["rt"], labels=y, logits_orig=torch.tensor([[0.0, 0.0]]))
    >>> round(float(out.total), 4), out.ce
    (0.6931, None)
    """
    import torch
    import torch.nn.functional as F

    chosen = set(terms)
    unknown = chosen - set(TERMS)
    if unknown or not chosen:
        raise ConfigError(
            f"loss terms {sorted(unknown) or '(none)'}: choose from {', '.join(TERMS)}"
        )
    parts: list[torch.Tensor] = []
    out = LossTerms(total=torch.zeros(()))

    def need(name: str, *xs: object) -> None:
        if any(x is None for x in xs):
            raise ConfigError(f"loss term {name!r} needs inputs that were not given")

    if "ce" in chosen:
        need("ce", logits_pert)
        ce = F.cross_entropy(logits_pert, labels)  # type: ignore[arg-type]
        parts.append(ce)
        out.ce = float(ce.detach())
    if "ep" in chosen:
        need("ep", emb_orig, emb_pert, mask_orig, mask_pert)
        ep = embedding_push_loss(emb_orig, emb_pert, mask_orig, mask_pert)  # type: ignore[arg-type]
        parts.append(alpha * ep)
        out.push_distance = -float(ep.detach())
    if "rt" in chosen:
        need("rt", logits_orig)
        rt = F.cross_entropy(logits_orig, labels)  # type: ignore[arg-type]
        parts.append(rt)
        out.rt = float(rt.detach())
    if "ap" in chosen:
        need("ap", attn_orig, attn_pert)
        ap = attention_pull_loss(
            attn_orig,  # type: ignore[arg-type]
            attn_pert,  # type: ignore[arg-type]
            mask_orig=mask_orig,
            mask_pert=mask_pert,
            mode=ap_mask,
        )
        parts.append(beta * ap)
        out.pull_mse = float(ap.detach())
    total = parts[0]
    for part in parts[1:]:  # left to right, in the reference's order
        total = total + part
    out.total = total
    return out
