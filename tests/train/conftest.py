"""Tiny training data: a self-written neighbour map and SIB-200 / PAWS-X / TSV-shaped folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: A hand-written counter-fitted-style neighbour map (case-sensitive keys, one empty list).
NEIGHBOURS = {
    "cat": ["kitten", "feline"],
    "dog": ["puppy", "hound", "doggy"],
    "sleeps": ["naps", "rests"],
    "runs": ["sprints", "races"],
    "rain": ["drizzle", "showers"],
    "cold": ["chilly", "freezing"],
    "warm": ["hot", "mild"],
    "today": ["now"],
    "big": ["large", "huge"],
    "the": [],
}

ENGLISH = {
    "animals": [
        "the cat sleeps on the warm mat",
        "the dog runs in the big park",
        "a big dog sleeps near the cat",
        "the cat runs after the dog today",
        "my dog sleeps all day",
        "the kitten and the cat play",
        "a cat runs on the big wall",
        "the dog sleeps in the warm house",
    ],
    "weather": [
        "cold rain falls today",
        "the rain is cold and grey",
        "warm sun and no rain today",
        "it is cold in the big city",
        "the wind is cold today",
        "heavy rain falls on the city",
        "a warm day with light rain",
        "snow and cold rain today",
    ],
}
GERMAN = {
    "animals": [
        "die Katze schläft auf der Matte",
        "der Hund läuft im Park",
        "die Katze läuft zum Hund",
        "der Hund schläft im Haus",
    ],
    "weather": [
        "kalter Regen fällt heute",
        "der Regen ist kalt",
        "warme Sonne und kein Regen",
        "heute ist es kalt",
    ],
}
FRENCH = {
    "animals": [
        "le chat dort sur le tapis",
        "le chien court dans le parc",
        "le chat court vers le chien",
        "le chien dort dans la maison",
    ],
    "weather": [
        "une pluie froide tombe",
        "la pluie est froide",
        "soleil chaud et pas de pluie",
        "il fait froid aujourd'hui",
    ],
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run ~15x faster on one thread on a shared machine; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_sib_file(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["index_id\tcategory\ttext"] + [f"{i}\t{c}\t{t}" for i, (c, t) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _rows(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    # interleave labels so that every prefix of the file has both
    a, w = table["animals"], table["weather"]
    out = []
    for x, y in zip(a, w, strict=True):
        out += [("animals", x), ("weather", y)]
    return out


@pytest.fixture
def neighbours() -> dict[str, list[str]]:
    """The hand-written neighbour map (a fresh copy)."""
    return json.loads(json.dumps(NEIGHBOURS))


@pytest.fixture
def neighbours_file(tmp_path) -> Path:
    p = tmp_path / "neighbours.json"
    p.write_text(json.dumps(NEIGHBOURS), encoding="utf-8")
    return p


@pytest.fixture
def tiny_sib(tmp_path) -> Path:
    """A SIB-200-shaped folder: eng_Latn train/dev/test, deu_Latn and fra_Latn test, labels.txt."""
    root = tmp_path / "sib" / "annotated"
    eng = _rows(ENGLISH)
    _write_sib_file(root / "eng_Latn" / "train.tsv", eng)
    _write_sib_file(root / "eng_Latn" / "dev.tsv", eng[:6])
    _write_sib_file(root / "eng_Latn" / "test.tsv", eng[6:12])
    (root / "eng_Latn" / "labels.txt").write_text("animals\nweather\n", encoding="utf-8")
    _write_sib_file(root / "deu_Latn" / "test.tsv", _rows(GERMAN))
    _write_sib_file(root / "fra_Latn" / "test.tsv", _rows(FRENCH))
    return root.parent


@pytest.fixture
def tiny_tsv(tmp_path) -> Path:
    """An XTREME-style folder: headerless sentence1<TAB>sentence2<TAB>label files."""
    root = tmp_path / "xnli"
    root.mkdir()
    eng = _rows(ENGLISH)
    pairs = [
        (t, eng[(i + 1) % len(eng)][1], "same" if i % 2 == 0 else "other")
        for i, (_, t) in enumerate(eng)
    ]
    (root / "train-en.tsv").write_text(
        "".join(f"{a}\t{b}\t{y}\n" for a, b, y in pairs), encoding="utf-8"
    )
    (root / "dev-en.tsv").write_text(
        "".join(f"{a}\t{b}\t{y}\n" for a, b, y in pairs[:4]), encoding="utf-8"
    )
    de = _rows(GERMAN)
    (root / "test-de.tsv").write_text(
        "".join(
            f"{t}\t{de[(i + 1) % len(de)][1]}\t{'same' if i % 2 == 0 else 'other'}\n"
            for i, (_, t) in enumerate(de)
        ),
        encoding="utf-8",
    )
    return root


@pytest.fixture
def tiny_pawsx(tmp_path) -> Path:
    """A PAWS-X-shaped folder (xtreme/ + hf/): English dev only, German test labels in hf/."""
    root = tmp_path / "paws-x"
    (root / "xtreme").mkdir(parents=True)
    (root / "hf").mkdir()
    eng = _rows(ENGLISH)
    en = [(t, eng[(i + 1) % len(eng)][1], str(i % 2)) for i, (_, t) in enumerate(eng)]
    (root / "xtreme" / "dev-en.tsv").write_text(
        "".join(f"{a}\t{b}\t{y}\n" for a, b, y in en), encoding="utf-8"
    )
    de = _rows(GERMAN)
    de_pairs = [(t, de[(i + 1) % len(de)][1], str(i % 2)) for i, (_, t) in enumerate(de)]
    (root / "xtreme" / "test-de.tsv").write_text(
        "".join(f"{a}\t{b}\n" for a, b, _ in de_pairs), encoding="utf-8"
    )
    (root / "hf" / "test-de.tsv").write_text(
        "id\tsentence1\tsentence2\tlabel\n"
        + "".join(f"{i}\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(de_pairs)),
        encoding="utf-8",
    )
    (root / "xtreme" / "test-fr.tsv").write_text(
        "".join(f"{a}\t{b}\n" for a, b, _ in de_pairs), encoding="utf-8"
    )
    return root
