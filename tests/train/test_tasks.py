"""Tasks: SIB-200, PAWS-X and TSV loading, and every bad input the issue lists."""

from __future__ import annotations

import copy

import pytest

from xalign.errors import ConfigError, DataError
from xalign.train import TrainConfig, load_task, train


def conf(**kw):
    return TrainConfig(**kw)


def test_sib200_task(tiny_sib):
    t = load_task(conf(task="sib200", data=f"sib200:{tiny_sib}"))
    assert t.labels == ["animals", "weather"] and t.train_lang == "eng" and not t.pair
    assert (len(t.train), len(t.dev)) == (16, 6)
    assert sorted(t.test) == ["deu", "eng", "fra"] and len(t.test["deu"]) == 8
    assert t.train["label"].tolist()[:4] == [0, 1, 0, 1]
    assert t.test["deu"]["text_a"].iloc[0] == "die Katze schläft auf der Matte"
    sub = load_task(
        conf(
            task="sib200",
            data=str(tiny_sib),
            train_limit=5,
            test_langs=["deu"],
            test_limit_per_lang=3,
        )
    )
    assert len(sub.train) == 5 and list(sub.test) == ["deu"] and len(sub.test["deu"]) == 3
    assert set(sub.train["id"]) <= set(t.train["id"])
    again = load_task(conf(task="sib200", data=str(tiny_sib), train_limit=5, test_langs=["deu"]))
    assert again.train.equals(sub.train)  # seeded subset


def test_pawsx_task_holds_out_dev_and_skips_unlabelled(tiny_pawsx):
    t = load_task(conf(task="pawsx", data=str(tiny_pawsx), dev_holdout=4))
    assert t.pair and t.labels == ["0", "1"]
    assert (len(t.train), len(t.dev)) == (12, 4)
    assert not set(t.train["id"]) & set(t.dev["id"])
    assert list(t.test) == ["deu"] and len(t.test["deu"]) == 8
    assert t.test["deu"]["label"].tolist() == [0, 1] * 4  # labels from hf/test-de.tsv
    assert any("dev-en.tsv minus 4 held-out pairs" in n for n in t.notes)
    assert any("without labels skipped: fr" in n for n in t.notes)
    with pytest.raises(DataError, match=r"test language\(s\) \['fr'\] have no labels"):
        load_task(conf(task="pawsx", data=str(tiny_pawsx), test_langs=["de", "fr"], dev_holdout=4))
    with pytest.raises(ConfigError, match="--dev-holdout 99"):
        load_task(conf(task="pawsx", data=str(tiny_pawsx), dev_holdout=99))


def test_tsv_task(tiny_tsv):
    t = load_task(conf(task="tsv", data=str(tiny_tsv)))
    assert t.pair and t.labels == ["other", "same"] and list(t.test) == ["deu"]
    assert t.train["text_b"].notna().all() and len(t.dev) == 4


def test_pair_task_trains_end_to_end(tiny_bert, tiny_pawsx, neighbours_file, tmp_path):
    r = train(
        conf(
            model="tiny-bert", task="pawsx", data=str(tiny_pawsx), dev_holdout=4, neighbours=str(neighbours_file),
            ap_layer=1, n_views=1, epochs=1, batch_size=4, grad_accum=1, seeds=[3],
            out=str(tmp_path / "p"), progress=False, save_checkpoint=False,
        ),
        encoder=copy.deepcopy(tiny_bert),
    )  # fmt: skip
    assert list(r.seeds[0].test_acc) == ["deu"] and r.train_log["ap"].iloc[1:].notna().all()
    assert any("held-out" in n for n in r.notes)


# ----------------------------------------------------------------------------- bad input


def _sib_lines(path, lines):
    path.write_text(
        "index_id\tcategory\ttext\n" + "".join(f"{x}\n" for x in lines), encoding="utf-8"
    )


def test_label_outside_the_label_set_names_file_and_line(tiny_sib):
    f = tiny_sib / "annotated" / "deu_Latn" / "test.tsv"
    _sib_lines(f, ["0\tanimals\tdie Katze", "1\tsports\tFußball", "2\tweather\tRegen"])
    with pytest.raises(
        DataError,
        match=r"deu_Latn/test\.tsv:3: label 'sports' is not in the label set \['animals', 'weather'\]",
    ):
        load_task(conf(task="sib200", data=str(tiny_sib), test_langs=["deu_Latn"]))


def test_missing_label_names_file_and_line(tiny_sib, tiny_tsv):
    f = tiny_sib / "annotated" / "fra_Latn" / "test.tsv"
    _sib_lines(f, ["0\tanimals\tle chat", "1\t\tla pluie"])
    with pytest.raises(DataError, match=r"fra_Latn/test\.tsv:3: empty category"):
        load_task(conf(task="sib200", data=str(tiny_sib)))
    (tiny_tsv / "test-de.tsv").write_text("a\tb\tsame\nc\td\t\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test-de\.tsv:2: missing label in test de"):
        load_task(conf(task="tsv", data=str(tiny_tsv)))
    (tiny_tsv / "test-de.tsv").write_text("a\tb\tsame\nc\td\tneutral\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test-de\.tsv:2: label 'neutral' is not in the label set"):
        load_task(conf(task="tsv", data=str(tiny_tsv)))
    (tiny_tsv / "test-de.tsv").write_text("a\tb\tsame\nc\tsame\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test-de\.tsv:2: 2 fields, expected 3"):
        load_task(conf(task="tsv", data=str(tiny_tsv)))


def test_absent_test_languages(tiny_sib, tiny_tsv, tmp_path):
    with pytest.raises(
        DataError,
        match=r"test languages: .*\['spa_Latn'\] not found; available: deu_Latn, eng_Latn, fra_Latn",
    ):
        load_task(conf(task="sib200", data=str(tiny_sib), test_langs=["spa_Latn"]))
    with pytest.raises(
        DataError, match=r"test language\(s\) \['fr'\] have no test-<lang>\.tsv; available: de"
    ):
        load_task(conf(task="tsv", data=str(tiny_tsv), test_langs=["fr"]))
    with pytest.raises(DataError, match="training language 'spa_Latn'"):
        load_task(conf(task="sib200", data=str(tiny_sib), train_lang="spa_Latn"))
    with pytest.raises(DataError, match="no target test language besides the training language"):
        train(
            conf(
                task="sib200",
                data=str(tiny_sib),
                test_langs=["eng_Latn"],
                method="finetune",
                out=str(tmp_path / "o"),  # beside the data: an output inside it is refused
                progress=False,
            ),
            encoder=None,
        )


def test_bad_options(tiny_bert, tiny_sib, neighbours_file, tmp_path):
    with pytest.raises(
        ConfigError, match="--ap-layer 3 is beyond the model: tiny-bert has L=2 blocks"
    ):
        train(
            conf(
                task="sib200",
                data=str(tiny_sib),
                neighbours=str(neighbours_file),
                ap_layer=3,
                out=str(tmp_path / "x"),
                progress=False,
            ),
            encoder=copy.deepcopy(tiny_bert),
        )
    with pytest.raises(ConfigError, match=r"--neighbours FILE\.json is required"):
        train(conf(task="sib200", data=str(tiny_sib), method="rsda", out=str(tmp_path / "y")))
    with pytest.raises(DataError, match="no such neighbour file"):
        train(
            conf(
                task="sib200",
                data=str(tiny_sib),
                neighbours=str(tmp_path / "no.json"),
                out=str(tmp_path / "z"),
            )
        )
    with pytest.raises(
        ConfigError, match="--method 'ear': allowed values are pushpull, finetune, rsda"
    ):
        conf(method="ear")
    with pytest.raises(ConfigError, match="--ablate applies to method pushpull"):
        conf(method="finetune", ablate=["ep"])
    with pytest.raises(ConfigError, match="removes every term"):
        conf(ablate="ce,rt,ep,ap")
    with pytest.raises(
        ConfigError, match=r"--ap-layer 0: must be >= 1 \(attention layers are 1\.\.L"
    ):
        conf(ap_layer=0)
    with pytest.raises(ConfigError, match="--data is required"):
        load_task(conf(task="sib200"))
    with pytest.raises(ConfigError, match="names kind 'pawsx' but --task is 'sib200'"):
        load_task(conf(task="sib200", data=f"pawsx:{tiny_sib}"))
    with pytest.raises(DataError, match="no such file or folder"):
        load_task(conf(task="sib200", data=str(tmp_path / "missing")))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"--out .*busy"):
            train(
                conf(
                    task="sib200",
                    data=str(tiny_sib),
                    method="finetune",
                    out=str(tmp_path / "busy"),
                    overwrite=overwrite,
                ),
                encoder=copy.deepcopy(tiny_bert),
            )
    assert (tmp_path / "busy" / "keep.txt").is_file()


@pytest.mark.shared
def test_real_sib200_and_pawsx(shared_data):
    sib = load_task(
        conf(task="sib200", data=str(shared_data / "sib-200"), test_langs=["deu_Latn", "zho_Hans"])
    )
    assert (len(sib.train), len(sib.dev)) == (701, 99) and len(sib.labels) == 7
    assert {k: len(v) for k, v in sib.test.items()} == {"deu": 204, "cmn_Hans": 204}
    assert sib.lang_raw["cmn_Hans"] == "zho_Hans"
    paws = load_task(conf(task="pawsx", data=str(shared_data / "paws-x")))
    assert (len(paws.train), len(paws.dev)) == (1800, 200)
    assert {k: len(v) for k, v in paws.test.items()} == {"deu": 1968, "cmn_Hans": 1975}


def test_label_aliases(tiny_tsv):
    (tiny_tsv / "test-de.tsv").write_text("a\tb\tsame\nc\td\tidentical\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test-de\.tsv:2: label 'identical'"):
        load_task(conf(task="tsv", data=str(tiny_tsv)))
    t = load_task(conf(task="tsv", data=str(tiny_tsv), label_aliases="identical=same"))
    assert t.test["deu"]["label"].tolist() == [1, 1] and t.labels == ["other", "same"]
    with pytest.raises(ConfigError, match="expected FROM=TO"):
        conf(label_aliases="identical")
