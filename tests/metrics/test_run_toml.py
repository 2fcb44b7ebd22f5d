"""A metrics TOML file is checked by the rules of the flags (issue 11, class 4)."""

from __future__ import annotations

import pytest

from xalign.metrics.__main__ import main


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('bootstrap = "many"', "bootstrap = 'many': invalid int value (as for --bootstrap)"),
        ("k = 2.5", "k = 2.5: invalid int value (as for --k)"),
        ('centering = "sometimes"', "invalid choice (as for --centering: choose from raw"),
        ('backend = "gpu"', "invalid choice (as for --backend"),
        ("scoring = [true, false]", "expected a list of strings (as for --scoring)"),
        ("scoring = [1, 2]", "--scoring [1, 2]: expected a comma-separated string or a list"),
        ('metrics = ["retrieval", "nope"]', "--metrics 'nope': allowed values are all"),
        ('independent = "yes"', "expected true or false (the switch --independent)"),
        ("bootstrap = -3", "--bootstrap -3: must be >= 0"),
        ("langs = {deu = 1}", "expected a str value (as for --langs)"),
        ("nonsense = 1", "unknown key(s) ['nonsense']"),
    ],
)
def test_bad_toml_values_are_one_line(tmp_path, capsys, toml, message):
    cfg = tmp_path / "m.toml"
    cfg.write_text(toml + "\n")
    assert main(["no-such-store", "--config", str(cfg), "--out", str(tmp_path / "r.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message in err, err
