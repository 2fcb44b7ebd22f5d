"""Hostile inputs to the corpus readers, ``python -m xalign.metrics`` and ``python -m
xalign.report`` (issue 11): every case found wrong when tried by hand, one test per class.

Each bad input must end in one clear line naming the file (and line) and exit 2 — never a
traceback, never a silently different number, never a replaced file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xalign.data import Corpus, load_corpus
from xalign.errors import ConfigError, DataError
from xalign.metrics import MetricsConfig

# ---------------------------------------------------------------------------- helpers


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------- corpus readers

HEADER = "id\tlang\ttext\n"


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        # a NUL byte used to pass into the corpus (and the model) as part of a sentence
        ("nul.tsv", HEADER + "1\ten\tHel\x00lo\n2\tde\tHallo\n", r"nul\.tsv:2: NUL byte"),
        # a UTF-16 file without a BOM is mostly NUL bytes
        ("u16.tsv", HEADER.encode("utf-16-le"), r"u16\.tsv:1: NUL.*UTF-16"),
        ("u16bom.tsv", HEADER.encode("utf-16"), r"u16bom\.tsv:1: invalid UTF-8.*UTF-16"),
        # an empty id used to pass once (and only the second was called a duplicate)
        ("noid.tsv", HEADER + "\ten\tHello\n", r"noid\.tsv:2: empty row id"),
        # a file read with the other delimiter was "no 'text' column; available: id\tlang\ttext"
        ("tabs.csv", HEADER + "1\ten\tHello\n", r"tabs\.csv:1: .*looks TSV.*tsv:"),
        ("commas.tsv", "id,lang,text\n1,en,Hello\n", r"commas\.tsv:1: .*looks CSV.*csv:"),
        # JSON Lines: a repeated key kept its last value; lists and numbers became their text
        ("dup.jsonl", '{"lang": "en", "text": "a", "text": "b"}\n', r"dup\.jsonl:1: key 'text'"),
        ("list.jsonl", '{"lang": "en", "text": ["a"]}\n', r"list\.jsonl:1: .*'text'.*list"),
        ("num.jsonl", '{"lang": "en", "text": 123}\n', r"num\.jsonl:1: .*'text'.*int"),
        ("obj.jsonl", '{"lang": "en", "text": "a", "label": {"x": 1}}\n', r"obj\.jsonl:1: .*"),
    ],
)
def test_bad_table_files_name_the_file_and_line(tmp_path, name, data, match):
    path = _write(tmp_path / name, data)
    kind = name.rsplit(".", 1)[1]
    with pytest.raises(DataError, match=match):
        load_corpus(f"{kind}:{path}")


def test_good_jsonl_values_still_read(tmp_path):
    path = _write(
        tmp_path / "ok.jsonl",
        '{"id": 7, "lang": "en", "text": "a", "label": 1, "group": 3.0}\n'
        '{"id": "x", "lang": "de", "text": "b", "label": "pos", "group": "3"}\n',
    )
    rows = load_corpus(f"jsonl:{path}").rows
    assert rows["id"].tolist() == ["7", "x"]
    assert rows["group"].tolist() == ["3", "3"]  # 3.0 and "3" are one group
    assert rows["label"].tolist() == ["1", "pos"]


def _tatoeba(folder: Path, deu: str, eng: str) -> Path:
    _write(folder / "tatoeba.deu-eng.deu", deu)
    _write(folder / "tatoeba.deu-eng.eng", eng)
    return folder


@pytest.mark.parametrize(
    ("deu", "eng", "match"),
    [
        ("Hallo\nWelt\x00\n", "Hello\nWorld\n", r"tatoeba\.deu-eng\.deu:2: NUL byte"),
        ("", "", r"tatoeba\.deu-eng\.deu: empty file"),
        ("Hallo\n", "Hello\nWorld\n", r"line counts differ"),
        ("Hallo\nWelt\n", "Hello\n\n", r"tatoeba\.deu-eng\.eng:2: empty"),
    ],
)
def test_bad_tatoeba_pairs(tmp_path, deu, eng, match):
    folder = _tatoeba(tmp_path / "t", deu, eng)
    with pytest.raises(DataError, match=match):
        load_corpus(f"tatoeba:{folder}")


def test_a_folder_where_a_file_is_expected(tmp_path):
    (tmp_path / "x.tsv").mkdir()
    with pytest.raises(DataError, match=r"x\.tsv: a folder stands where a file is expected"):
        load_corpus(f"tsv:{tmp_path / 'x.tsv'}")


def test_split_and_limit_options_say_what_is_wrong(tmp_path):
    # the sample has no splits: it said "no rows in split(s) ['train']; available: []"
    with pytest.raises(DataError, match="this corpus has no splits"):
        load_corpus("sample", split="train")
    for bad in (0, -3, 2.5, True):
        with pytest.raises(DataError, match=r"--limit-per-lang\) must be an integer >= 1"):
            load_corpus("sample", limit_per_lang=bad)
    sib = _write(
        tmp_path / "sib" / "deu_Latn" / "test.tsv", "index_id\tcategory\ttext\n1\ts\tHallo\n"
    )
    with pytest.raises(
        ConfigError,
        match=r"--split \(for sib200 data\) 'validation': allowed values are "
        r"train, dev, test, all",
    ):
        load_corpus(f"sib200:{sib.parent.parent}", split="validation")


def test_bad_data_stops_extract_with_one_line(tmp_path, capsys):
    from xalign.extract.__main__ import main

    bad = _write(tmp_path / "nul.tsv", HEADER + "1\ten\tHel\x00lo\n")
    out = tmp_path / "store"
    rc = main(["--data", f"tsv:{bad}", "--out", str(out), "--layers", "0", "--no-progress"])
    assert rc == 2
    assert "nul.tsv:2: NUL byte" in _one_line_error(capsys)
    assert not (out / "manifest.json").exists()


# ---------------------------------------------------------------------------- metrics options


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        # "=runs/x" silently fell back to the store's own label; "a=" opened the current folder
        ({"stores": ["=runs/x"]}, "non-empty label and path"),
        ({"stores": ["before="]}, "non-empty label and path"),
        # ",," meant every language; "," failed after opening with "no metric could be computed"
        ({"langs": ",,"}, "--langs ',,': names no language"),
        ({"layers": ","}, "--layers ',': names no layer"),
        # failed only after computing, with "(unexpected: please report it)"
        ({"seed": 2**32}, r"--seed 4294967296: must be in \[0, 4294967295\]"),
        ({"bootstrap": 10**20}, r"--bootstrap .*: must be in \[0, 1000000\]"),
    ],
)
def test_metrics_options_refused_up_front(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        MetricsConfig(**{"stores": ["runs/x"], **kwargs})


@pytest.fixture(scope="module")
def store3(tiny_bert, tmp_path_factory) -> Path:
    """A tiny parallel store: eng, deu, fra, 6 translation groups, layers 0..2."""
    from xalign.extract import ExtractConfig, extract

    recs = [
        {"id": f"{lang}{i}", "lang": lang, "text": f"{lang} sentence {i}", "group": f"g{i}"}
        for lang in ("eng", "deu", "fra")
        for i in range(6)
    ]
    st, _ = extract(
        ExtractConfig(out=str(tmp_path_factory.mktemp("hostile") / "s"), progress=False),
        corpus=Corpus.from_records(recs),
        encoder=tiny_bert,
    )
    return st.path


QUICK = ["--layers", "1", "--bootstrap", "0", "--no-progress"]


def test_pivot_and_langs_in_other_spellings_mean_the_same_languages(store3, tmp_path):
    from xalign.metrics import compute_metrics

    base = dict(stores=[str(store3)], metrics=["retrieval"], layers="1", bootstrap=0)
    base.update(progress=False)
    # "--pivot en" used to miss "eng" and silently pair every two languages
    r = compute_metrics(MetricsConfig(**base, pivot="en", langs="en,de,fr"))
    pairs = set(map(tuple, r[r["metric"] == "retrieval_acc_mean"][["lang", "lang2"]].values))
    assert pairs == {("deu", "eng"), ("fra", "eng")}
    same = compute_metrics(MetricsConfig(**base, pivot="eng", langs="eng,deu,fra"))
    assert np.allclose(r["value"].to_numpy(), same["value"].to_numpy())


def test_a_pivot_the_store_lacks(store3, capsys, tmp_path):
    from xalign.metrics import compute_metrics
    from xalign.metrics.__main__ import main

    out = tmp_path / "r.parquet"
    rc = main([str(store3), "--metrics", "retrieval", "--pivot", "zul", "--out", str(out), *QUICK])
    assert rc == 2 and not out.exists()
    assert "--pivot 'zul': not among the languages" in _one_line_error(capsys)
    # the default pivot (eng) missing from the languages asked for is said, not hidden
    cfg = MetricsConfig(stores=[str(store3)], metrics=["retrieval"], layers="1", bootstrap=0,
                        langs="deu,fra", progress=False)  # fmt: skip
    r = compute_metrics(cfg)
    assert any("no eng rows" in n for n in r.attrs["notes"])


def test_a_read_only_results_file_is_not_replaced(store3, capsys, tmp_path):
    from xalign.metrics.__main__ import main

    out = tmp_path / "kept.parquet"
    out.write_bytes(b"precious")
    out.chmod(0o444)
    try:
        rc = main([str(store3), "--metrics", "isotropy", "--out", str(out), *QUICK])
        assert rc == 2
        assert "exists and is read-only" in _one_line_error(capsys)
        assert out.read_bytes() == b"precious"
    finally:
        out.chmod(0o644)


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        (b"\xff\xfebootstrap = 1\n", "not UTF-8 text"),
        (b"langs = [1, 2]\n", r"--langs .*\(with --config .*m\.toml\)"),
        (b"seed = 99999999999\n", r"--seed .*must be in \[0, 4294967295\]"),
    ],
)
def test_metrics_toml_errors_are_one_line_naming_the_file(store3, tmp_path, capsys, toml, match):
    from xalign.metrics.__main__ import main

    cfg = tmp_path / "m.toml"
    cfg.write_bytes(toml)
    rc = main([str(store3), "--config", str(cfg), "--out", str(tmp_path / "r.parquet"), *QUICK])
    assert rc == 2
    err = _one_line_error(capsys)
    assert str(cfg) in err and re.search(match, err), err


def test_gold_of_the_wrong_kind(store3, tmp_path, capsys):
    from xalign.metrics.__main__ import main

    rc = main([str(store3), "--metrics", "isotropy", "--gold", f"tsv:{tmp_path}",
               "--out", str(tmp_path / "r.parquet"), *QUICK])  # fmt: skip
    assert rc == 2
    assert "expected wordalign:DIR" in _one_line_error(capsys)


# ---------------------------------------------------------------------------- report inputs

COLUMNS = ["store", "checkpoint", "metric", "layer", "lang", "lang2", "value", "n", "ci_low",
           "ci_high", "protocol"]  # fmt: skip


def _results() -> pd.DataFrame:
    recs = []
    for layer in (0, 1, 2):
        for scoring in ("cosine", "margin"):
            proto = json.dumps({"centered": False, "scoring": scoring, "pooling": "mean"})
            for lang in ("deu", "fra"):
                value = 0.5 + 0.1 * layer + (0.05 if scoring == "margin" else 0.0)
                recs.append(["runs/a", "a", "retrieval_acc_mean", layer, lang, "eng", value,
                             10, np.nan, np.nan, proto])  # fmt: skip
    return pd.DataFrame(recs, columns=COLUMNS).astype({"lang": object, "lang2": object})


def _spoil(kind: str) -> pd.DataFrame:
    df = _results()
    if kind == "text value":
        df["value"] = df["value"].map(str)
        df.loc[3, "value"] = "n/a"
    elif kind == "fractional layer":
        df["layer"] = df["layer"] + 0.5
    elif kind == "negative layer":
        df["layer"] = -df["layer"]
    elif kind == "protocol not JSON":
        df.loc[2, "protocol"] = "centered=false"
    elif kind == "protocol a list":
        df.loc[2, "protocol"] = "[1, 2]"
    elif kind == "null checkpoint":
        df["checkpoint"] = df["checkpoint"].astype(object)
        df.loc[0, "checkpoint"] = None
    elif kind == "appended twice":
        df = pd.concat([df, df.iloc[:4]], ignore_index=True)
    elif kind == "true/false values":
        df["value"] = True
    elif kind == "fractional n":
        df["n"] = 2.5
    return df


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        # a traceback (TypeError: Cannot perform reduction 'std' with string dtype)
        ("text value", r"column 'value' holds 'n/a'.*first row 4"),
        # layer 0.5 was read as layer 0 and averaged with it
        ("fractional layer", r"column 'layer' holds 0\.5"),
        ("negative layer", r"column 'layer' holds -1\.0"),
        # a traceback (json.decoder.JSONDecodeError)
        ("protocol not JSON", r"column 'protocol' holds 'centered=false'.*first row 3"),
        ("protocol a list", r"column 'protocol' holds '\[1, 2\]'"),
        # a traceback (IndexError: list index out of range)
        ("null checkpoint", r"column 'checkpoint' is empty or null in 1 row, first row 1"),
        # repeated rows were averaged in, counting one result twice
        ("appended twice", r"4 rows, first row 13: a row repeats"),
        ("true/false values", r"column 'value' holds true/false"),
        ("fractional n", r"column 'n' holds 2\.5"),
    ],
)
def test_a_damaged_results_table_is_refused_with_its_row(tmp_path, capsys, kind, match):
    from xalign.report.__main__ import main

    path = tmp_path / "r.parquet"
    _spoil(kind).to_parquet(path)
    out = tmp_path / "report"
    assert main([str(path), "--out", str(out), "--no-figures"]) == 2
    err = _one_line_error(capsys)
    assert str(path) in err and re.search(match, err), err
    assert not (out / "report.md").exists()


def test_numbers_written_as_text_still_read(tmp_path):
    from xalign.results import load_results

    df = _results()
    df["value"] = df["value"].map(str)
    df["layer"] = df["layer"].map(str)
    got, _ = load_results(df)
    assert np.allclose(got["value"].to_numpy(), _results()["value"].to_numpy())
    assert got["layer"].tolist() == _results()["layer"].tolist()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        # fell back to cosine without a word: the report showed numbers not asked for
        (["--protocol", "scoring=csls"], r"scoring=csls: .*values there: cosine, margin"),
        (["--protocol", "bogus=1"], r"no row of the chosen metrics records 'bogus'"),
        (["--format", ","], r"--format .*names no format"),
        (["--layers", ","], r"--layers ',': names no layer"),
        (["--layers", "2-0"], r"range '2-0' runs backwards"),
    ],
)
def test_report_options_refused(tmp_path, capsys, args, match):
    from xalign.report.__main__ import main

    path = tmp_path / "r.parquet"
    _results().to_parquet(path)
    assert main([str(path), "--out", str(tmp_path / "rep"), "--no-figures", *args]) == 2
    assert re.search(match, _one_line_error(capsys))


def test_a_protocol_choice_applied_by_hand_is_honoured(tmp_path):
    from xalign.report import build_report

    margin = build_report(_results(), out=tmp_path / "m", figures=False, formats=["md"],
                          protocol="scoring=margin")  # fmt: skip
    md = (margin.out / "report.md").read_text(encoding="utf-8")
    assert "scoring=margin" in md and "| 2 | **0.750** |" in md  # 0.5 + 0.2 + 0.05


def test_report_toml_not_utf8_and_late_errors_name_the_file(tmp_path, capsys):
    from xalign.report.__main__ import main

    path = tmp_path / "r.parquet"
    _results().to_parquet(path)
    cfg = tmp_path / "r.toml"
    cfg.write_bytes(b"\xffdecimals = 2\n")
    assert main([str(path), "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert "not UTF-8 text" in _one_line_error(capsys)
    cfg.write_text('compare = "a"\n', encoding="utf-8")
    assert main([str(path), "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    assert f"(with --config {cfg})" in _one_line_error(capsys)


def test_report_out_over_a_projects_own_files_is_refused(tmp_path, capsys):
    from xalign.report.__main__ import main

    path = tmp_path / "r.parquet"
    _results().to_parquet(path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"mine": 1}\n')
    assert main([str(path), "--out", str(project), "--no-figures"]) == 2
    assert "already holds config.json" in _one_line_error(capsys)
    assert (project / "config.json").read_text() == '{"mine": 1}\n'
    # an earlier report in the folder is replaced as before
    report = tmp_path / "report"
    assert main([str(path), "--out", str(report), "--no-figures"]) == 0
    assert main([str(path), "--out", str(report), "--no-figures", "--decimals", "2"]) == 0
    assert json.loads((report / "config.json").read_text())["decimals"] == 2


def test_provenance_metrics_command_holds_only_options(tmp_path):
    from xalign.report import build_report

    path = tmp_path / "r.parquet"
    _results().to_parquet(path)
    # the metrics sidecar records notes and failures too: they used to become "--notes ..."
    sidecar = {"stores": ["runs/a b"], "bootstrap": 20, "out": str(path),
               "notes": ["bucc skipped for a: no pairs"], "failures": []}  # fmt: skip
    (tmp_path / "r.config.json").write_text(json.dumps(sidecar))
    summary = build_report(path, out=tmp_path / "rep", figures=False, formats=["md"])
    prov = json.loads((summary.out / "provenance.json").read_text())
    cmd = prov["commands"]["metrics"]
    assert "--notes" not in cmd and "--failures" not in cmd
    assert cmd.startswith("python -m xalign.metrics 'runs/a b' --bootstrap 20 --out ")
