"""Language codes: ISO 639-3, plus ``_Script`` where the script matters.

Rules (applied by :func:`normalize_lang`):

1. The language subtag becomes its ISO 639-3 code: two-letter ISO 639-1 codes and
   ISO 639-2/B codes are converted (``de``, ``ger`` -> ``deu``); three-letter codes are kept
   as the dataset gives them, retired ones included (LASER's ``kzj`` stays ``kzj``, distinct
   from ``dtp``; ``tgl`` is not turned into CLDR's ``fil``), so two sets of one dataset never
   merge. The one macrolanguage rewrite is Chinese: ``zh``/``zho``/``chi`` mean Mandarin in
   NLP datasets and become ``cmn``.
2. Chinese varieties always carry a script (Simplified and Traditional Han are both in wide
   use): the one given, else the CLDR default from the region (``zh-TW`` -> ``cmn_Hant``),
   else the language's default (``cmn`` -> ``cmn_Hans``, ``yue`` -> ``yue_Hant``).
3. Languages in current use in several scripts (Serbian, Punjabi, Kashmiri, Uzbek, ...) keep
   the script the dataset gives; none is invented when the dataset gives none, because such
   data are often mixed (Tatoeba's Serbian is Cyrillic and Latin).
4. Any other language drops a script that is its usual one (``deu_Latn`` -> ``deu``,
   ``jpn_Jpan`` -> ``jpn``) and keeps an unusual one (``arb_Latn``, ``ace_Arab``).
5. A region is used only for rule 2 and otherwise dropped (``pt-BR`` -> ``por``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from xalign.errors import DataError

__all__ = ["language_name", "normalize_lang", "script_of", "split_lang"]

_TAG = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?$")

#: Members of the Chinese macrolanguage (and Literary Chinese): Simplified or Traditional Han.
_CHINESE = frozenset(
    {"cdo", "cjy", "cmn", "cpx", "czh", "czo", "gan", "hak", "hsn", "lzh", "mnp", "nan", "wuu"}
    | {"yue", "zho"}
)

#: Languages in current use in more than one script: a given script is kept even when it is
#: the usual one, so ``srp_Cyrl`` and ``srp_Latn`` read alike.
_MULTI_SCRIPT = frozenset(
    {"ace", "azb", "aze", "azj", "ber", "bjn", "bos", "ckb", "hbs", "kab", "kas", "kaz"}
    | {"khk", "kmr", "knc", "kur", "min", "mni", "mon", "msa", "pan", "pnb", "san", "sat"}
    | {"sdh", "shi", "snd", "srp", "taq", "tat", "tzm", "uig", "uzb", "uzn", "uzs", "zgh"}
    | {"zsm"}
)

#: Not languages: undetermined, multiple, uncoded, no linguistic content.
_NOT_LANGUAGES = frozenset({"mis", "mul", "und", "zxx"})

#: Script codes a language counts as "usual" under another name (Korean: Hangul within Kore).
_SCRIPT_EQUIV = {"Hang": "Kore"}


def _unknown(code: str, why: str, source: object) -> DataError:
    return DataError(f"unknown language code {code!r}: {why}", path=source)


@lru_cache(maxsize=4096)
def _iso639_3(sub: str) -> str | None:
    """ISO 639-3 code for a lower-case 2/3-letter subtag, or None when unknown."""
    import langcodes
    from langcodes.data_dicts import LANGUAGE_ALPHA3, LANGUAGE_ALPHA3_BIBLIOGRAPHIC

    if sub in _NOT_LANGUAGES or "qaa" <= sub <= "qtz":
        return None
    if len(sub) == 2:
        try:
            code = langcodes.Language.get(sub, normalize=False).to_alpha3()
        except LookupError:
            return None
        return code if langcodes.tag_is_valid(sub) else None
    if not langcodes.Language.get(sub).is_valid():
        return None
    b_to_t = {b: LANGUAGE_ALPHA3[a2] for a2, b in LANGUAGE_ALPHA3_BIBLIOGRAPHIC.items()}
    return b_to_t.get(sub, sub)


@lru_cache(maxsize=4096)
def _likely_script(lang: str, region: str | None = None) -> str | None:
    """CLDR's likely script for an ISO 639-3 code (and region), via its macrolanguage if need be.

    Read from the likely-subtags table directly: ``Language.maximize`` falls back to
    ``Latn`` (from ``und``) for languages the table lacks, which would be a guess.
    """
    from langcodes.data_dicts import LANGUAGE_ALPHA3, LIKELY_SUBTAGS, MACROLANGUAGES

    to_alpha2 = {a3: a2 for a2, a3 in LANGUAGE_ALPHA3.items()}
    key = to_alpha2.get(lang, lang)
    for k in (key, MACROLANGUAGES.get(key) or MACROLANGUAGES.get(lang)):
        if k is None:
            continue
        for tag in ((f"{k}-{region}",) if region else ()) + (k,):
            full = LIKELY_SUBTAGS.get(tag)
            if full is not None:
                return full.split("-")[1]
    return None


def _valid_script(script: str) -> bool:
    import langcodes

    return (
        bool(re.fullmatch(r"[A-Z][a-z]{3}", script))
        and langcodes.Language.get(f"und-{script}").is_valid()
    )


def normalize_lang(code: str, *, script: str | None = None, source: object = None) -> str:
    """The normalised language code: ISO 639-3, plus ``_Script`` where the script matters.

    See the module docstring for the rules.

    Parameters
    ----------
    code : str
        A BCP 47-like code as a dataset writes it: ``de``, ``deu``, ``ger``, ``zh-TW``,
        ``arb_Arab``, ``cmn_Hans``... (``_`` and ``-`` both separate subtags).
    script : str, optional
        ISO 15924 script that the dataset states for this language when the code itself
        carries none (e.g. ``"Hani"`` for Chinese text mixing Simplified and Traditional).
    source : object, optional
        Where the code came from (a file or folder); named in the error message.

    Returns
    -------
    str
        E.g. ``deu``, ``cmn_Hans``, ``srp_Cyrl``, ``arb_Latn``.

    Raises
    ------
    DataError
        The code is not a known language code, or its script conflicts with ``script``.

    Examples
    --------
    >>> [normalize_lang(c) for c in ("de", "deu", "ger", "deu_Latn")]
    ['deu', 'deu', 'deu', 'deu']
    >>> [normalize_lang(c) for c in ("zh", "cmn", "zh-TW", "zh_tw", "zho_Hant", "yue")]
    ['cmn_Hans', 'cmn_Hans', 'cmn_Hant', 'cmn_Hant', 'cmn_Hant', 'yue_Hant']
    >>> normalize_lang("srp_Cyrl"), normalize_lang("srp"), normalize_lang("arb_Latn")
    ('srp_Cyrl', 'srp', 'arb_Latn')
    >>> normalize_lang("cmn", script="Hani")
    'cmn_Hani'
    """
    if not isinstance(code, str):
        raise DataError(f"language code must be a string, got {code!r}", path=source)
    m = _TAG.match(code.strip())
    if m is None:
        raise _unknown(
            code,
            "expected an ISO 639 code with optional _Script, e.g. 'deu', 'de', 'cmn_Hans'",
            source,
        )
    sub, scr, region = m.group(1).lower(), m.group(2), m.group(3)
    if region is not None:
        region = region.upper()  # CLDR keys are upper-case: ``zh-tw`` must read as ``zh-TW``
    lang = _iso639_3(sub)
    if lang is None:
        raise _unknown(code, f"{sub!r} is not an ISO 639 language code", source)
    if lang == "zho":
        lang = "cmn"
    if scr is not None:
        scr = scr.title()
    if script is not None:
        given = script.strip().title()
        if not _valid_script(given):
            raise DataError(
                f"unknown ISO 15924 script {script!r} for language {code!r}", path=source
            )
        if scr is not None and scr != given:
            raise DataError(
                f"language code {code!r} names script {scr!r} but {given!r} was given", path=source
            )
        scr = given
    if scr is not None and not _valid_script(scr):
        raise _unknown(code, f"{scr!r} is not an ISO 15924 script code", source)
    if lang in _CHINESE:
        if scr is None:
            scr = _likely_script(lang, region) or "Hans"
        return f"{lang}_{scr}"
    if scr is not None and lang not in _MULTI_SCRIPT:
        usual = _likely_script(lang)
        if usual is not None and _SCRIPT_EQUIV.get(scr, scr) == _SCRIPT_EQUIV.get(usual, usual):
            scr = None
    return f"{lang}_{scr}" if scr else lang


def split_lang(code: str) -> tuple[str, str | None]:
    """``(ISO 639-3 code, script or None)`` of a language code, normalised first.

    >>> split_lang("zho_Hant"), split_lang("deu_Latn")
    (('cmn', 'Hant'), ('deu', None))
    """
    norm = normalize_lang(code)
    lang, _, scr = norm.partition("_")
    return lang, scr or None


def script_of(code: str) -> str | None:
    """ISO 15924 script of a language code: the one it names, else the language's usual one.

    None when the language has no known usual script. For data known to mix scripts (Tatoeba's
    ``srp``) the usual script is a default, not a measurement.

    >>> script_of("cmn_Hant"), script_of("deu"), script_of("rus"), script_of("arb_Latn")
    ('Hant', 'Latn', 'Cyrl', 'Latn')
    """
    lang, scr = split_lang(code)
    if scr is not None:
        return scr
    return _likely_script(lang)


@lru_cache(maxsize=4096)
def _name(lang: str, scr: str | None) -> str | None:
    import langcodes
    from langcodes.data_dicts import LANGUAGE_ALPHA3

    to_alpha2 = {a3: a2 for a2, a3 in LANGUAGE_ALPHA3.items()}
    name = langcodes.Language.make(language=to_alpha2.get(lang, lang), script=scr).display_name()
    if name.startswith("Unknown language"):
        name = langcodes.Language.get(f"{lang}-{scr}" if scr else lang).display_name()
    return None if name.startswith("Unknown language") else name


def language_name(code: str) -> str:
    """English display name of a language code (via ``langcodes``).

    >>> language_name("cmn_Hans"), language_name("de"), language_name("srp_Cyrl")
    ('Mandarin Chinese (Simplified)', 'German', 'Serbian (Cyrillic)')
    """
    lang, scr = split_lang(code)
    name = _name(lang, scr)
    if name is None:
        raise DataError(f"no English name known for language code {code!r}")
    return name
