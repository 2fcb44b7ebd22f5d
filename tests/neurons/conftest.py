"""A tiny BERT store with neuron statistics, shared by the tests of this folder."""

from __future__ import annotations

import pytest

from xalign.data import Corpus

TEXTS = {
    "eng": ["The cat sleeps on the warm mat.", "Rain again today.", "We walked to the old harbour at dawn.",
            "My brother reads books.", "The shop opens at nine.", "Bread is on the table."],
    "deu": ["Die Katze schläft auf der warmen Matte.", "Heute regnet es wieder.", "Wir gingen im Morgengrauen zum alten Hafen.",
            "Mein Bruder liest Bücher.", "Der Laden öffnet um neun.", "Brot liegt auf dem Tisch."],
    "rus": ["Кошка спит на тёплом коврике.", "Сегодня снова дождь.", "На рассвете мы пошли в старую гавань.",
            "Мой брат читает книги.", "Магазин открывается в девять.", "Хлеб на столе."],
}  # fmt: skip


def corpus() -> Corpus:
    recs = [
        {"id": f"{lang}:{i}", "lang": lang, "text": t, "group": str(i)}
        for lang, texts in TEXTS.items()
        for i, t in enumerate(texts)
    ]
    return Corpus.from_records(recs, name="tiny-neurons")


@pytest.fixture(scope="session")
def neuron_store(tiny_bert, tmp_path_factory):
    from xalign.extract import ExtractConfig, extract

    out = tmp_path_factory.mktemp("neurons") / "before"
    cfg = ExtractConfig(out=str(out), neurons=True, chunk_rows=5, progress=False, model="tiny")
    store, _ = extract(cfg, corpus=corpus(), encoder=tiny_bert)
    return store
