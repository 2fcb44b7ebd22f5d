"""Pair-mode attention, damaged in many ways: every reader must stop with a clear error.

One store is made once through the command line (``python -m xalign.extract ... --pairs
eng,deu`` on the saved tiny BERT and a 3-pair word-alignment corpus with gold links), with pair
chunks of 64 elements so that every array has several chunks. Each case copies it, damages the
pair set, and checks ``read_pair_attention``/``PairAttention``, ``--verify`` and
``python -m xalign.metrics --metrics word_align`` (which reads the pair attention): each names
the store, the pair set and the damaged file, and none returns numbers. Rerunning the same
extraction command recomputes the pair set, byte-identical to the intact one.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from xalign.errors import StoreError
from xalign.store import PairAttention, Store, read_pair_attention, verify_store

PAIRS = "arrays.zarr/pairs/eng-deu"
TABLE = "pairs-eng-deu.parquet"
INFO = "pairs-eng-deu.json"
CHUNK_ELEMENTS = 64

SRC_TGT = (
    "the cat sleeps on the warm mat ||| die Katze schläft auf der warmen Matte\n"
    "we read two books . ||| wir lesen zwei Bücher .\n"
    "rain again today in the north ||| heute regnet es wieder im Norden\n"
)
GOLD = "1-2 2-2 3-3\n1-1 2-2 3-3 4-4 5p5\n1p4 2p4 3-1\n"


def _argv(model: Path, data: Path, out: Path) -> list[str]:
    return [
        "--model", str(model), "--data", f"wordalign:{data}", "--out", str(out),
        "--tokens", "--attentions", "head-mean", "--pairs", "eng,deu",
        "--device", "cpu", "--no-progress",
    ]  # fmt: skip


def _extract(model: Path, data: Path, out: Path) -> int:
    from xalign.extract.__main__ import main

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("xalign.extract._pairs._CHUNK", CHUNK_ELEMENTS)
        return main(_argv(model, data, out))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("wa") / "en-de"
    d.mkdir()
    (d / "ende.src-tgt").write_text(SRC_TGT, encoding="utf-8")
    (d / "ende.gold").write_text(GOLD, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def intact(tmp_path_factory, tiny_bert_dir, data) -> Path:
    out = tmp_path_factory.mktemp("rel") / "s"
    assert _extract(tiny_bert_dir, data, out) == 0
    return out


# ----------------------------------------------------------------------------- corruptions


def _edit_json(path: Path, edit) -> None:
    d = json.loads(path.read_text())
    edit(d)
    path.write_text(json.dumps(d, indent=2))


def _garbage(p: Path) -> None:
    n = p.stat().st_size
    p.write_bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes())


def _table_short(s: Path) -> None:
    import pandas as pd

    pd.read_parquet(s / TABLE).iloc[:-1].to_parquet(s / TABLE, index=False)


def _table_swapped(s: Path) -> None:
    import pandas as pd

    df = pd.read_parquet(s / TABLE)
    df["group"] = df["group"].iloc[::-1].to_numpy()  # same length, other content
    df.to_parquet(s / TABLE, index=False)


CORRUPTIONS = {
    "missing chunk": (lambda s: (s / PAIRS / "ab/c/1/1").unlink(), "pairs/eng-deu/ab chunk c/1/1"),
    "truncated chunk": (
        lambda s: (s / PAIRS / "ab/c/1/1").write_bytes((s / PAIRS / "ab/c/1/1").read_bytes()[:9]),
        "pairs/eng-deu/ab chunk c/1/1",
    ),
    "same-size garbage chunk": (
        lambda s: _garbage(s / PAIRS / "ba/c/2/0"),
        "pairs/eng-deu/ba chunk c/2/0",
    ),
    "chunk replaced by another": (
        lambda s: shutil.copyfile(s / PAIRS / "ab/c/0/1", s / PAIRS / "ab/c/1/1"),
        "pairs/eng-deu/ab chunk c/1/1",
    ),
    "offsets garbage": (
        lambda s: _garbage(s / PAIRS / "ab_offsets/c/0"),
        "pairs/eng-deu/ab_offsets chunk c/0",
    ),
    "array metadata edited": (
        lambda s: _edit_json(s / PAIRS / "ba/zarr.json", lambda m: m.update(fill_value=1.0)),
        "pairs/eng-deu/ba",
    ),
    "array folder deleted": (lambda s: shutil.rmtree(s / PAIRS / "ba"), "pairs/eng-deu/ba"),
    "table one row short": (_table_short, TABLE),
    "table same length, other content": (_table_swapped, TABLE),
    "table deleted": (lambda s: (s / TABLE).unlink(), TABLE),
    "record layers edited": (
        lambda s: _edit_json(s / INFO, lambda m: m.update(layers=m["layers"][::-1])),
        INFO,
    ),
    "record counts edited": (
        lambda s: _edit_json(s / INFO, lambda m: m["counts"].update(pairs=2)),
        INFO,
    ),
    "record not JSON": (lambda s: (s / INFO).write_text('{"format": "xalign-pa'), INFO),
}


@pytest.fixture(params=sorted(CORRUPTIONS))
def damaged(request, intact, tmp_path) -> tuple[Path, str]:
    s = tmp_path / "s"
    shutil.copytree(intact, s)
    corrupt, names = CORRUPTIONS[request.param]
    corrupt(s)
    return s, names


#: damage that keeps every size and record: only checksums (reads, full verify) find it
SAME_SIZE = {"same-size garbage chunk", "chunk replaced by another", "offsets garbage"}


@pytest.mark.parametrize(
    "case", sorted(set(CORRUPTIONS) - SAME_SIZE - {"table same length, other content"})
)
def test_quick_verify_finds_size_and_record_damage(case, intact, tmp_path):
    s = tmp_path / "s"
    shutil.copytree(intact, s)
    CORRUPTIONS[case][0](s)
    rep = verify_store(s, full=False)
    assert not rep.ok and CORRUPTIONS[case][1] in rep.format()


def _read_everything(s: Path) -> None:
    pa = PairAttention(s, "eng", "deu")
    for layer in pa.layers:
        for i in range(len(pa)):
            read_pair_attention(s, "eng", "deu", index=i, layer=layer)
        list(pa.layer_blocks(layer))


# ----------------------------------------------------------------------------- readers


def test_intact_pairs_read_and_verify(intact):
    pa = PairAttention(intact, "eng", "deu")
    assert len(pa) == 3 and pa.layers == [1, 2]
    assert pa.info["format_version"] == 2 and pa.info["integrity"]["algorithm"] == "crc32"
    assert len(pa.info["integrity"]["arrays"]["ab"]) > 4  # several chunks per layer
    for i in range(3):
        ab, ba, wa, wb = read_pair_attention(intact, "eng", "deu", index=i, layer=2)
        assert ab.shape == (len(wa), len(wb)) and ba.shape == (len(wb), len(wa))
        assert np.isfinite(ab).all() and ab.min() > 0  # softmax weights: never zero-filled
    rep = verify_store(intact)
    assert rep.ok and rep.checksums, rep.format()
    assert rep.chunks > Store.open(intact).verify().chunks - 1  # pair chunks counted


def test_read_pair_attention_refuses(damaged):
    s, names = damaged
    with pytest.raises(StoreError) as err:
        _read_everything(s)
    msg = str(err.value)
    assert str(s) in msg and names in msg and "\n" not in msg, msg
    assert "--pairs eng,deu" in msg  # says what to do


def test_main_store_still_opens(damaged):
    """The pair set is separate: the store itself is intact and reads."""
    s, _ = damaged
    assert Store.open(s).sentences(layer=1).shape[0] == 6


def test_verify_lists_the_problem(damaged, capsys):
    from xalign.extract.__main__ import main

    s, names = damaged
    assert main(["--verify", str(s)]) == 1
    out = capsys.readouterr()
    assert "DAMAGED" in out.out and names in out.out and "error: store" in out.err


def test_metrics_word_align_refuses(damaged, data, tmp_path, capsys):
    from xalign.metrics.__main__ import main

    s, names = damaged
    out = tmp_path / "r.parquet"
    argv = [str(s), "--metrics", "word_align", "--gold", f"wordalign:{data}",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "error: " in err and names in err and str(s) in err and "Traceback" not in err, err


def test_metrics_word_align_intact(intact, data, tmp_path):
    import pandas as pd

    from xalign.metrics.__main__ import main

    out = tmp_path / "r.parquet"
    argv = [str(intact), "--metrics", "word_align", "--gold", f"wordalign:{data}",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    df = pd.read_parquet(out)
    assert df["metric"].str.startswith("attn_align").any()


def test_reads_check_crc_after_open(intact, tmp_path):
    """Opening checks sizes only: damage after open is still caught by the read."""
    s = tmp_path / "s"
    shutil.copytree(intact, s)
    pa = PairAttention(s, "eng", "deu")
    pa.blocks(0, layer=1)
    _garbage(s / PAIRS / "ab/c/1/0")
    with pytest.raises(StoreError, match=r"pairs/eng-deu/ab chunk c/1/0 \(elements 64\.\.127.*CRC"):
        list(pa.layer_blocks(1))


# ----------------------------------------------------------------------------- repair


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_rerun_recomputes_the_pair_set(case, intact, tiny_bert_dir, data, tmp_path):
    s = tmp_path / "s"
    shutil.copytree(intact, s)
    CORRUPTIONS[case][0](s)
    assert _extract(tiny_bert_dir, data, s) == 0
    assert verify_store(s).ok, verify_store(s).format()
    for f in sorted((intact / PAIRS).rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (s / f.relative_to(intact)).read_bytes(), f
    assert (s / TABLE).read_bytes() == (intact / TABLE).read_bytes()
    _read_everything(s)


def test_interrupted_pair_run_is_a_note(intact, tmp_path):
    s = tmp_path / "s"
    shutil.copytree(intact, s)
    (s / INFO).unlink()  # what a run killed before its last write leaves
    rep = verify_store(s)
    assert rep.ok and any("eng-deu is incomplete" in n for n in rep.notes), rep.format()
    from xalign.errors import ConfigError

    with pytest.raises(ConfigError, match="no pair attention for eng-deu"):
        PairAttention(s, "eng", "deu")


def test_pair_set_of_format_1_warns_and_checks_sizes(intact, tiny_bert_dir, data, tmp_path):
    """A pair set written before checksums opens with one warning; sizes are still checked."""
    import zarr

    s = tmp_path / "s"
    shutil.copytree(intact, s)

    def downgrade(m):
        m.pop("integrity")
        m.pop("sha256")
        m["format_version"] = 1

    _edit_json(s / INFO, downgrade)
    for name in ("ab_offsets", "ba_offsets"):  # format 1 compressed its offsets (zstd)
        values = zarr.open_array(str(s / PAIRS / name), mode="r")[...]
        shutil.rmtree(s / PAIRS / name)
        g = zarr.open_group(str(s / PAIRS), mode="a", zarr_format=3)
        g.create_array(name, shape=values.shape, chunks=values.shape, dtype="int64")[...] = values
    with pytest.warns(UserWarning, match="without checksums"):
        pa = PairAttention(s, "eng", "deu")
    ab, _ = pa.blocks(1, layer=2)
    want, _ = PairAttention(intact, "eng", "deu").blocks(1, layer=2)
    np.testing.assert_array_equal(ab, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PairAttention(s, "eng", "deu")  # once per pair set
    rep = verify_store(s)
    assert rep.ok and any("pair format 1" in n for n in rep.notes), rep.format()
    (s / PAIRS / "ab/c/1/1").unlink()
    with pytest.raises(StoreError, match=r"pairs/eng-deu/ab chunk c/1/1 .*is missing"):
        PairAttention(s, "eng", "deu")
    assert not verify_store(s).ok
    assert _extract(tiny_bert_dir, data, s) == 0  # the rerun records checksums
    assert PairAttention(s, "eng", "deu").info["format_version"] == 2 and verify_store(s).ok
