"""The push/pull losses against hand computations; gradients reach what each term should reach."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from xalign.errors import ConfigError
from xalign.train import (
    TrainConfig,
    attention_pull_loss,
    embedding_push_loss,
    load_neighbours,
    load_task,
    masked_mean,
    objective,
    paired_views,
)
from xalign.train._trainer import _Trainer


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_masked_mean_and_embedding_push_by_hand():
    e1, e2 = rand(2, 4, 3, seed=1), rand(2, 4, 3, seed=2)
    m1 = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    m2 = np.array([[1, 1, 1, 1], [1, 0, 0, 0]])
    mean1 = np.stack([e1[b, m1[b] == 1].mean(0) for b in range(2)])
    mean2 = np.stack([e2[b, m2[b] == 1].mean(0) for b in range(2)])
    np.testing.assert_allclose(
        masked_mean(torch.tensor(e1), torch.tensor(m1)).numpy(), mean1, rtol=1e-6
    )
    want = -np.mean((mean1 - mean2) ** 2)  # −(1/(B·d)) Σ_b ‖ē(x_b) − ē(x̃_b)‖²
    got = embedding_push_loss(
        torch.tensor(e1), torch.tensor(e2), torch.tensor(m1), torch.tensor(m2)
    )
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert float(got) < 0


def test_attention_pull_full_and_masked_by_hand():
    B, H, T = 2, 3, 4
    a = softmax(rand(B, H, T, T, seed=3))
    b = softmax(rand(B, H, T, T, seed=4))
    got = attention_pull_loss(torch.tensor(a), torch.tensor(b))
    assert float(got) == pytest.approx(np.sum((a - b) ** 2) / (B * H * T * T), rel=1e-6)
    m1 = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    m2 = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    num = den = 0.0
    for bb in range(B):
        real = [i for i in range(T) if m1[bb, i] and m2[bb, i]]
        for h in range(H):
            for i in real:
                for j in real:
                    num += (a[bb, h, i, j] - b[bb, h, i, j]) ** 2
                    den += 1
    masked = attention_pull_loss(
        torch.tensor(a),
        torch.tensor(b),
        mask_orig=torch.tensor(m1),
        mask_pert=torch.tensor(m2),
        mode="pad",
    )
    assert float(masked) == pytest.approx(num / den, rel=1e-6)
    assert float(masked) != pytest.approx(float(got), rel=1e-3)
    with pytest.raises(ConfigError, match="differ in shape"):
        attention_pull_loss(torch.tensor(a), torch.tensor(b[:, :, :3, :3]))
    with pytest.raises(ConfigError, match="needs the attention masks"):
        attention_pull_loss(torch.tensor(a), torch.tensor(b), mode="pad")


def _inputs():
    B, T, d, H, C = 3, 5, 4, 2, 3
    lp, lo = rand(B, C, seed=5), rand(B, C, seed=6)
    y = np.array([0, 2, 1])
    ep_o, ep_p = rand(B, T, d, seed=7), rand(B, T, d, seed=8)
    mo = np.array([[1] * 5, [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]])
    mp = np.array([[1] * 5, [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    ao, ap = softmax(rand(B, H, T, T, seed=9)), softmax(rand(B, H, T, T, seed=10))
    return lp, lo, y, ep_o, ep_p, mo, mp, ao, ap


def test_objective_total_and_ablations_by_hand():
    lp, lo, y, ep_o, ep_p, mo, mp, ao, ap = _inputs()
    t = torch.tensor
    kw = dict(
        labels=t(y), logits_pert=t(lp), logits_orig=t(lo), emb_orig=t(ep_o), emb_pert=t(ep_p),
        mask_orig=t(mo), mask_pert=t(mp), attn_orig=t(ao), attn_pert=t(ap), alpha=0.1, beta=1.0,
    )  # fmt: skip
    ce = log_loss(y, softmax(lp), labels=[0, 1, 2])
    rt = log_loss(y, softmax(lo), labels=[0, 1, 2])
    mean = lambda e, m: np.stack([e[b, m[b] == 1].mean(0) for b in range(len(m))])  # noqa: E731
    push = np.mean((mean(ep_o, mo) - mean(ep_p, mp)) ** 2)
    pull = np.mean((ao - ap) ** 2)
    terms = {"ce": ce, "ep": -0.1 * push, "rt": rt, "ap": 1.0 * pull}
    full = objective(terms=["ce", "ep", "rt", "ap"], **kw)
    assert float(full.total) == pytest.approx(sum(terms.values()), rel=1e-5)
    assert (full.ce, full.rt) == pytest.approx((ce, rt), rel=1e-5)
    assert (full.push_distance, full.pull_mse) == pytest.approx((push, pull), rel=1e-5)
    for drop in terms:
        kept = [k for k in terms if k != drop]
        part = objective(terms=kept, **kw)
        assert float(part.total) == pytest.approx(sum(terms[k] for k in kept), rel=1e-5)
        assert float(full.total) - float(part.total) == pytest.approx(
            terms[drop], rel=1e-4, abs=1e-6
        )
        field = {"ce": "ce", "rt": "rt", "ep": "push_distance", "ap": "pull_mse"}[drop]
        assert getattr(part, field) is None
    # α, β scale their terms linearly
    two = objective(terms=["ep", "ap"], **{**kw, "alpha": 0.2, "beta": 3.0})
    assert float(two.total) == pytest.approx(-0.2 * push + 3.0 * pull, rel=1e-5)
    with pytest.raises(ConfigError, match="choose from"):
        objective(terms=["kl"], **kw)
    with pytest.raises(ConfigError, match="needs inputs"):
        objective(terms=["ap"], labels=t(y))


def _trainer(encoder, tiny_sib, neighbours_file, tmp_path, **kw):
    cfg = TrainConfig(
        model="tiny", task="sib200", data=str(tiny_sib), neighbours=str(neighbours_file),
        n_views=1, out=str(tmp_path / "run"), progress=False, **kw,
    )  # fmt: skip
    task = load_task(cfg)
    views = paired_views(task.train, load_neighbours(neighbours_file), n_views=1, seed=0)
    assert (views["pert_a"] != views["text_a"]).sum() >= 8  # most rows really differ
    return cfg, _Trainer(cfg, task, encoder, views, tmp_path)


def _grads(encoder, tiny_sib, neighbours_file, tmp_path, **kw):
    from xalign.train import build_classifier

    torch.manual_seed(0)
    _, tr = _trainer(encoder, tiny_sib, neighbours_file, tmp_path, **kw)
    clf = build_classifier(encoder, num_labels=2, head="mean")
    clf.train()
    clf.zero_grad(set_to_none=True)
    vals = tr._micro(clf, np.arange(8), 1.0, None)
    grads = {
        n: (p.grad.abs().sum().item() if p.grad is not None else 0.0)
        for n, p in clf.named_parameters()
    }
    return vals, grads


def test_embedding_push_gradient_reaches_word_embeddings_only(
    tiny_bert, tiny_sib, neighbours_file, tmp_path
):
    enc = copy.deepcopy(tiny_bert)
    vals, g = _grads(
        enc, tiny_sib, neighbours_file, tmp_path, ablate=["ce", "rt", "ap"], ap_layer=1
    )
    assert np.isnan(vals["ce"]) and np.isnan(vals["rt"]) and np.isnan(vals["ap"]) and vals["ep"] < 0
    assert g["encoder.embeddings.word_embeddings.weight"] > 0
    assert g["encoder.embeddings.LayerNorm.weight"] > 0
    assert all(v == 0 for n, v in g.items() if n.startswith(("encoder.encoder.", "head.")))
    W = enc.model.embeddings.word_embeddings.weight
    assert (W.grad.abs().sum(1) == 0).sum() > 0  # rows of tokens absent from the batch: untouched


@pytest.mark.parametrize("layer", [1, 2])
def test_attention_pull_gradient_reaches_the_chosen_block(
    layer, tiny_bert, tiny_sib, neighbours_file, tmp_path
):
    enc = copy.deepcopy(tiny_bert)
    vals, g = _grads(
        enc, tiny_sib, neighbours_file, tmp_path, ablate=["ce", "rt", "ep"], ap_layer=layer
    )
    assert vals["ap"] > 0 and np.isnan(vals["ep"])
    k = layer - 1  # xalign attention layer ℓ = block ℓ = HF encoder.layer[ℓ - 1]
    blk = f"encoder.encoder.layer.{k}.attention.self."
    assert g[blk + "query.weight"] > 0 and g[blk + "key.weight"] > 0
    # probabilities do not depend on this block's values, nor on later blocks or the head
    assert g[blk + "value.weight"] == 0
    assert all(v == 0 for n, v in g.items() if n.startswith(f"encoder.encoder.layer.{k + 1}."))
    assert all(v == 0 for n, v in g.items() if n.startswith("head."))
    if layer == 2:  # earlier blocks feed block 2's queries and keys
        assert g["encoder.encoder.layer.0.attention.self.value.weight"] > 0


def test_attention_pull_depends_on_padding_unless_masked(tiny_bert):
    """What docs/push-pull.md states about β: on a real (tiny) BERT, the same sentence pair
    padded to its longest sentence and to 32 tokens gives different reference (``none``)
    Attention-Pull values, and the same ``pad``-masked value."""
    import copy

    enc = copy.deepcopy(tiny_bert)  # the session's model stays as it is
    enc.model.set_attn_implementation("eager")  # attention maps, as training switches to
    pair = ["the cat sat on the mat", "the dog sat on a red mat today"]
    vals = {}
    for length in ("longest", 32):
        kw = {"padding": "max_length", "max_length": length} if length != "longest" else {
            "padding": "longest"}  # fmt: skip
        batch = enc.tokenizer(pair, return_tensors="pt", **kw)
        with torch.no_grad():
            att = enc.model(**batch, output_attentions=True).attentions[0]
        a, b = att[:1], att[1:]
        m = batch["attention_mask"]
        vals[length] = (
            float(attention_pull_loss(a, b)),
            float(attention_pull_loss(a, b, mask_orig=m[:1], mask_pert=m[1:], mode="pad")),
        )
    assert vals["longest"][0] > 1.1 * vals[32][0]  # shorter padding, larger reference AP (1.28x)
    assert vals["longest"][1] == pytest.approx(vals[32][1], rel=1e-4)
