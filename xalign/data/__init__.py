"""Corpora: the Corpus table, readers for real datasets, ``--data`` specs, the bundled sample.

>>> from xalign.data import load_corpus
>>> load_corpus("sample", langs=["de", "zh"]).languages
['deu', 'cmn_Hans']
"""

from __future__ import annotations

from xalign.data._corpus import COLUMNS, Corpus
from xalign.data._langs import language_name, normalize_lang, script_of, split_lang
from xalign.data._readers import (
    TABLE_FIELDS,
    TATOEBA_SCRIPTS,
    read_hf,
    read_pawsx,
    read_pawsx_pairs,
    read_sib200,
    read_table,
    read_tatoeba,
)
from xalign.data._sample import load_sample
from xalign.data._spec import DATA_KINDS, load_corpus, parse_data_spec
from xalign.data._wordalign import (
    gold_alignments,
    read_gold_alignments,
    read_word_align,
    read_word_pairs,
)

__all__ = [
    "COLUMNS",
    "DATA_KINDS",
    "TABLE_FIELDS",
    "TATOEBA_SCRIPTS",
    "Corpus",
    "gold_alignments",
    "language_name",
    "load_corpus",
    "load_sample",
    "normalize_lang",
    "parse_data_spec",
    "read_gold_alignments",
    "read_hf",
    "read_pawsx",
    "read_pawsx_pairs",
    "read_sib200",
    "read_table",
    "read_tatoeba",
    "read_word_align",
    "read_word_pairs",
    "script_of",
    "split_lang",
]
