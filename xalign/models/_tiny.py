"""Tiny random-init models with tokenizers trained in-process: for tests, never for results.

Each kind mirrors a real architecture: ``"bert"`` (WordPiece, like mBERT), ``"xlmr"``
(SentencePiece-style Unigram with Metaspace, RoBERTa positions, like XLM-R) and
``"decoder"`` (byte-level BPE and a GPT-2 decoder without a pad token). Nothing is
downloaded; the same seed gives the same weights.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from xalign.errors import ConfigError
from xalign.models._encoder import Encoder
from xalign.models._load import ensure_pad_token, load_encoder, make_facts

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

__all__ = ["TINY_TEXTS", "tiny_encoder", "train_tiny_tokenizer"]

TinyKind = Literal["bert", "xlmr", "decoder"]

#: Longest input of the tiny models, in tokens (specials included).
_MAX_LENGTH = 128
_VOCAB_SIZE = 600

#: The built-in training text: six sentences, each in eleven languages and ten scripts.
TINY_TEXTS: tuple[str, ...] = (
    "The cat sleeps on the warm windowsill.",
    "Die Katze schläft auf der warmen Fensterbank.",
    "Le chat dort sur le rebord chaud de la fenêtre.",
    "El gato duerme en el alféizar caliente.",
    "Кошка спит на тёплом подоконнике.",
    "Η γάτα κοιμάται στο ζεστό περβάζι.",
    "القطة تنام على حافة النافذة الدافئة.",
    "החתול ישן על אדן החלון החם.",
    "बिल्ली गर्म खिड़की पर सोती है।",
    "猫在温暖的窗台上睡觉。",
    "猫は暖かい窓辺で眠っている。",
    "We read two books every week.",
    "Wir lesen jede Woche zwei Bücher.",
    "Nous lisons deux livres chaque semaine.",
    "Leemos dos libros cada semana.",
    "Мы читаем две книги каждую неделю.",
    "Διαβάζουμε δύο βιβλία κάθε εβδομάδα.",
    "نقرأ كتابين كل أسبوع.",
    "אנחנו קוראים שני ספרים בכל שבוע.",
    "हम हर हफ्ते दो किताबें पढ़ते हैं।",
    "我们每周读两本书。",
    "私たちは毎週本を二冊読みます。",
    "It is raining in the city today.",
    "Heute regnet es in der Stadt.",
    "Il pleut en ville aujourd'hui.",
    "Hoy llueve en la ciudad.",
    "Сегодня в городе идёт дождь.",
    "Σήμερα βρέχει στην πόλη.",
    "إنها تمطر في المدينة اليوم.",
    "היום יורד גשם בעיר.",
    "आज शहर में बारिश हो रही है।",
    "今天城里下雨。",
    "今日は街で雨が降っています。",
    "My brother plays the guitar very well.",
    "Mein Bruder spielt sehr gut Gitarre.",
    "Mon frère joue très bien de la guitare.",
    "Mi hermano toca muy bien la guitarra.",
    "Мой брат очень хорошо играет на гитаре.",
    "Ο αδερφός μου παίζει πολύ καλά κιθάρα.",
    "أخي يعزف على الجيتار جيدًا جدًا.",
    "אחי מנגן בגיטרה טוב מאוד.",
    "मेरा भाई बहुत अच्छा गिटार बजाता है।",
    "我哥哥吉他弹得很好。",
    "兄はギターがとても上手です。",
    "Where is the train station, please?",
    "Wo ist bitte der Bahnhof?",
    "Où est la gare, s'il vous plaît ?",
    "¿Dónde está la estación de tren, por favor?",
    "Где находится вокзал, пожалуйста?",
    "Πού είναι ο σιδηροδρομικός σταθμός, παρακαλώ;",
    "أين محطة القطار من فضلك؟",
    "איפה תחנת הרכבת, בבקשה?",
    "कृपया, रेलवे स्टेशन कहाँ है?",
    "请问火车站在哪里？",
    "駅はどこですか？",
    "She bought 3 apples and 12 pears for 7,50 €.",
    "Sie kaufte 3 Äpfel und 12 Birnen für 7,50 €.",
    "Elle a acheté 3 pommes et 12 poires pour 7,50 €.",
    "Compró 3 manzanas y 12 peras por 7,50 €.",
    "Она купила 3 яблока и 12 груш за 7,50 €.",
    "Αγόρασε 3 μήλα και 12 αχλάδια για 7,50 €.",
    "اشترت 3 تفاحات و12 كمثرى بـ 7,50 €.",
    "היא קנתה 3 תפוחים ו-12 אגסים ב-7,50 €.",
    "उसने 7,50 € में 3 सेब और 12 नाशपाती खरीदीं।",
    "她花7,50欧元买了3个苹果和12个梨。",
    "彼女は7,50ユーロでりんごを3個と梨を12個買った。",
    "서울은 한국의 수도입니다.",
    "แมวนอนอยู่บนขอบหน้าต่าง",
)

_SPECIALS = {
    "bert": ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
    "xlmr": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    "decoder": ["<|endoftext|>"],
}


def _check_kind(kind: str) -> None:
    allowed = get_args(TinyKind)
    if kind not in allowed:
        raise ConfigError(f"kind={kind!r} is not one of {', '.join(map(repr, allowed))}")


def _train_unigram_pieces(corpus: list[str], vocab_size: int) -> tuple[list[str], list[str]]:
    """Train a Unigram model with ``tokenizers`` and return its pieces and the corpus words.

    The trainers of ``tokenizers`` are not reproducible in everything they return: WordPiece's
    vocabulary changes from run to run, and Unigram's scores and order jitter (its piece
    *set* is stable). So only the piece set is kept; callers derive the rest deterministically.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIALS["xlmr"],
        unk_token="<unk>",
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    specials = set(_SPECIALS["xlmr"])
    pieces = sorted(p for p in tok.get_vocab() if p not in specials)
    words = [
        w
        for text in corpus
        for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text))
    ]
    return pieces, words


def train_tiny_tokenizer(
    kind: TinyKind, texts: Iterable[str] | None = None
) -> PreTrainedTokenizerFast:
    """Train a small fast tokenizer of the given kind in-process (vocabulary of a few hundred).

    Parameters
    ----------
    kind : {"bert", "xlmr", "decoder"}
        ``"bert"``: WordPiece with ``[CLS] $A [SEP]``; ``"xlmr"``: Unigram with the Metaspace
        pre-tokenizer and ``<s> $A </s>``; ``"decoder"``: byte-level BPE, no pad token.
    texts : iterable of str, optional
        Training text; default :data:`TINY_TEXTS`.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        Deterministic: the same texts give the same tokenizer.

    Notes
    -----
    The byte-level BPE comes straight from ``tokenizers``' ``BpeTrainer``. The Unigram and
    WordPiece vocabularies are the piece set learned by ``UnigramTrainer``; Unigram scores
    are then the log relative frequency of each piece as a substring of the corpus words, and
    WordPiece gets every word-initial piece, every other piece with ``##`` and every
    character in both forms, in sorted order. This keeps them reproducible (see
    ``_train_unigram_pieces``).

    Examples
    --------
    >>> tok = train_tiny_tokenizer("bert")
    >>> tok("Die Katze schläft.")["input_ids"][0] == tok.cls_token_id
    True
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import ByteLevel, TemplateProcessing
    from transformers import AddedToken, PreTrainedTokenizerFast

    _check_kind(kind)
    corpus = list(TINY_TEXTS if texts is None else texts)
    if not corpus:
        raise ConfigError("texts is empty: a tokenizer needs training text")
    specials = _SPECIALS[kind]
    tok: Any
    if kind == "bert":
        pieces, words = _train_unigram_pieces(corpus, 400)
        chars = {c for w in words for c in w.lstrip("▁")}
        entries = {p[1:] if p.startswith("▁") else "##" + p for p in pieces}
        entries |= chars | {"##" + c for c in chars}
        entries -= {"", "##"}
        vocab = {t: i for i, t in enumerate([*specials, *sorted(entries - set(specials))])}
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
    elif kind == "xlmr":
        pieces, words = _train_unigram_pieces(corpus, _VOCAB_SIZE)
        counts = {p: max(sum(w.count(p) for w in words), 1) for p in pieces}
        total = sum(counts.values())
        scored = sorted(((-math.log(c / total), p) for p, c in counts.items()))
        unigram = [(s, 0.0) for s in specials[:-1]] + [(p, -cost) for cost, p in scored]
        unigram.append((specials[-1], 0.0))  # <mask> last, as in XLM-R
        tok = Tokenizer(models.Unigram(unigram, unk_id=specials.index("<unk>")))
        tok.normalizer = normalizers.Sequence(
            [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
        )
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    else:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=_VOCAB_SIZE,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(corpus, trainer=trainer)
    ids = {s: tok.token_to_id(s) for s in specials}
    named: dict[str, Any]
    if kind == "bert":
        tok.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
        )
        named = {
            "pad_token": "[PAD]",
            "unk_token": "[UNK]",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "mask_token": "[MASK]",
        }
    elif kind == "xlmr":
        tok.post_processor = TemplateProcessing(
            single="<s> $A </s>",
            pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
        )
        named = {
            "bos_token": "<s>",
            "eos_token": "</s>",
            "cls_token": "<s>",
            "sep_token": "</s>",
            "pad_token": "<pad>",
            "unk_token": "<unk>",
            "mask_token": AddedToken("<mask>", lstrip=True, rstrip=False, special=True),
        }
    else:
        # Like GPT-2: offsets keep the leading space of a word; no BOS/EOS are added.
        tok.post_processor = ByteLevel(trim_offsets=False)
        named = {
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
        }
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=_MAX_LENGTH, **named)


def _build_model(
    kind: str,
    tokenizer: PreTrainedTokenizerFast,
    *,
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    attn_implementation: str,
) -> PreTrainedModel:
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2Model,
        XLMRobertaConfig,
        XLMRobertaModel,
    )

    sizes: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "intermediate_size": 4 * hidden_size,
    }
    config: Any
    if kind == "bert":
        config = BertConfig(
            **sizes,
            max_position_embeddings=_MAX_LENGTH,
            type_vocab_size=2,
            pad_token_id=tokenizer.pad_token_id,
        )
        cls: Any = BertModel
    elif kind == "xlmr":
        config = XLMRobertaConfig(
            **sizes,
            max_position_embeddings=_MAX_LENGTH + 2,  # RoBERTa positions start at pad_id + 1
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        cls = XLMRobertaModel
    else:
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=_MAX_LENGTH,
            n_embd=hidden_size,
            n_layer=num_layers,
            n_head=num_heads,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        cls = GPT2Model
    config._attn_implementation = attn_implementation
    model = cls(config)
    model.eval()
    return model


def _state_hash(model: torch.nn.Module) -> str:
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tiny_encoder(
    kind: TinyKind,
    *,
    seed: int = 0,
    num_layers: int = 2,
    hidden_size: int = 32,
    num_heads: int = 4,
    save_to: str | os.PathLike[str] | None = None,
    attn_implementation: Literal["sdpa", "eager"] = "sdpa",
) -> Encoder:
    """Build a tiny random-init model with a tokenizer trained in-process, on CPU.

    Parameters
    ----------
    kind : {"bert", "xlmr", "decoder"}
        ``BertModel`` + WordPiece, ``XLMRobertaModel`` + Unigram, or ``GPT2Model`` + byte-level
        BPE (``family="decoder"``, pad token set to eos as :func:`load_encoder` does).
    seed : int
        Weights are drawn from ``torch.manual_seed(seed)`` (the global RNG state is restored).
    num_layers, hidden_size, num_heads : int
        Architecture; the feed-forward size is ``4 * hidden_size``.
    save_to : path, optional
        Also save the model and tokenizer there (``save_pretrained``) and return what
        ``load_encoder(save_to)`` returns, so ``weights_hash`` is that of the folder.
    attn_implementation : {"sdpa", "eager"}
        ``"eager"`` makes the model return attention maps.

    Returns
    -------
    Encoder
        In eval mode; ``facts.name`` is ``"tiny-<kind>"`` (or the folder path when saved) and
        ``facts.weights_hash`` a sha256 of the weights.

    Examples
    --------
    >>> enc = tiny_encoder("bert", num_layers=2)
    >>> (enc.facts.num_layers, enc.facts.hidden_size, enc.facts.family)
    (2, 32, 'encoder')
    """
    import torch

    _check_kind(kind)
    if attn_implementation not in ("sdpa", "eager"):
        raise ConfigError(
            f"attn_implementation={attn_implementation!r} is not one of 'sdpa', 'eager'"
        )
    for field, value in (("num_layers", num_layers), ("hidden_size", hidden_size)):
        if value < 1:
            raise ConfigError(f"{field}={value} must be at least 1")
    if num_heads < 1 or hidden_size % num_heads:
        raise ConfigError(f"num_heads={num_heads} must divide hidden_size={hidden_size}")
    tokenizer = train_tiny_tokenizer(kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(
            kind,
            tokenizer,
            num_layers=num_layers,
            hidden_size=hidden_size,
            num_heads=num_heads,
            attn_implementation=attn_implementation,
        )
    if save_to is not None:
        folder = Path(save_to)
        folder.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return load_encoder(folder, device="cpu", attn_implementation=attn_implementation)
    extra: dict[str, Any] = {"tiny": {"kind": kind, "seed": seed}}
    ensure_pad_token(tokenizer, extra)
    facts = make_facts(
        model.config,
        tokenizer,
        name=f"tiny-{kind}",
        family="decoder" if kind == "decoder" else "encoder",
        weights_hash=_state_hash(model),
        extra=extra,
    )
    return Encoder(
        model=model,
        tokenizer=tokenizer,
        facts=facts,
        device=torch.device("cpu"),
        attn_implementation=attn_implementation,
    )
