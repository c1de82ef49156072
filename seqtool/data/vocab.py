"""Vocabularies: words, tags, labels and characters <-> integer ids.

Raw records (the README's record contract) go through ``prepare`` (checked,
text fields tokenized), ``build_vocab`` counts them into a ``Vocab``, and
``Vocab.encode`` adds the ids to a record (``apply_vocab`` over a stream)::

    vocab = build_vocab(records, min_count=2)
    vocab.to_json("vocab.json")
    for record in apply_vocab(Vocab.from_json("vocab.json"), records): ...

Ids: words and characters have ``<PAD>`` = 0 and ``<UNK>`` = 1, then the rest
by count (highest first) and then by text; tags have ``O`` first (when seen)
and then the rest sorted; labels are sorted (numbers before strings).
"""
import bisect
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import repeat
from typing import Iterable, Iterator

from seqtool.errors import DataError, UsageError
from seqtool.data.jsonl import dumps, write_atomic
from seqtool.data.tokenize import tokenize

FORMAT_VERSION = 1
PAD, UNK = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1
VECTOR_WORDS = "vector_word_list"   # in a model's vocab dict: the words a vectors file added (words.txt)

# (tokens key, text key it is made from, ids key) for each token sequence a record may carry.
SEQUENCES = (("tokens", "text", "ids"), ("q1_tokens", "q1", "q1_ids"), ("q2_tokens", "q2", "q2_ids"))


def _q(value) -> str:
    """A value quoted for a message, as JSON writes it."""
    return json.dumps(value, ensure_ascii=False)


def _check_strings(record: dict, key: str) -> list:
    value = record[key]
    if type(value) is not list or not set(map(type, value)) <= {str}:
        raise DataError(f"{_q(key)} must be a list of strings")
    return value


def prepare(record: dict) -> dict:
    """A copy of a raw record, checked against the contract, with its text fields tokenized.

    ``text`` / ``q1`` / ``q2`` become ``tokens`` / ``q1_tokens`` / ``q2_tokens``
    unless those are already there. Raises DataError (without a location) when
    the record has nothing to tokenize, an empty token list, ``tags`` that do
    not match ``tokens``, half a pair, or a label of the wrong type.
    """
    out = dict(record)
    for tok_key, text_key, _ in SEQUENCES:
        if out.get(tok_key) is not None:
            tokens = _check_strings(out, tok_key)
        elif out.get(text_key) is not None:
            if type(out[text_key]) is not str:
                raise DataError(f"{_q(text_key)} must be a string")
            tokens = out[tok_key] = tokenize(out[text_key])
        else:
            continue
        if not tokens:
            raise DataError(f"{_q(tok_key)} is empty" if tok_key in record else f"{_q(text_key)} has no tokens")
    if ("q1_tokens" in out) != ("q2_tokens" in out):
        raise DataError('a pair needs both "q1" and "q2"')
    if not any(tok_key in out for tok_key, _, _ in SEQUENCES):
        raise DataError('no "tokens", "text" or "q1"/"q2" to read')
    if out.get("tags") is not None:
        tags = _check_strings(out, "tags")
        if "tokens" not in out or len(tags) != len(out["tokens"]):
            raise DataError(f'"tags" has {len(tags)} items but "tokens" has {len(out.get("tokens", ()))}')
    label = out.get("label")
    if label is not None and type(label) not in (str, int):
        raise DataError('"label" must be a string or an integer')
    duplicate = out.get("is_duplicate")
    if duplicate is not None and (type(duplicate) is not int or duplicate not in (0, 1)):
        raise DataError('"is_duplicate" must be 0 or 1')
    return out


@dataclass
class Table:
    """Names in id order, with how often each was seen in the data the vocabulary was built from.

    ``sorted_from``: the names from there on (the words a vectors file added, 400k of them) are
    sorted and looked up by bisection instead of a dict, which would take longer to build at load
    than a one-sentence ``tag`` may take in all.
    """

    names: list
    counts: list[int]
    sorted_from: int | None = None
    index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # A literal "<PAD>" in the data must not get the padding id: it is left out of the lookup.
        head = self.names if self.sorted_from is None else self.names[:self.sorted_from]
        self.index = {name: i for i, name in enumerate(head) if name != PAD}

    def get(self, name: str, default=None):
        """The id of ``name`` (dict, then the sorted tail), else ``default``."""
        i = self.index.get(name)
        if i is not None or self.sorted_from is None:
            return default if i is None else i
        k = bisect.bisect_left(self.names, name, self.sorted_from)
        return k if k < len(self.names) and self.names[k] == name else default

    def __len__(self) -> int:
        return len(self.names)

    def to_json(self) -> list:
        return [[name, count] for name, count in zip(self.names, self.counts)]

    @classmethod
    def from_json(cls, pairs: list) -> "Table":
        return cls([name for name, _ in pairs], [count for _, count in pairs])


@dataclass
class Vocab:
    """The word, tag, label and character tables, and how they were built."""

    words: Table
    tags: Table
    labels: Table
    chars: Table
    lowercase: bool = False
    settings: dict = field(default_factory=dict)  # min_count, max_size, char_min_count, records

    def encode(self, record: dict) -> dict:
        """A raw record with ``ids`` (and ``tag_ids``, ``label_id``, ``q1_ids``, ``q2_ids``) added."""
        return self.add_ids(prepare(record))

    def word_ids(self, tokens) -> list[int]:
        """The word ids of ``tokens`` (looked up in lower case for a lower-cased vocabulary; <UNK> if unknown).

        A cased vocabulary that a (lower-cased) vectors file extended falls back to the lower-cased form,
        as the vectors were matched: "Berlin", unseen in training, finds GloVe's "berlin"."""
        if self.lowercase:
            tokens = map(str.lower, tokens)
        if not self.vector_words_added:
            return list(map(self.words.index.get, tokens, repeat(UNK_ID)))
        get = self.words.get
        if self.lowercase:
            return [get(t, UNK_ID) for t in tokens]
        return [get(t, 0) or get(t.lower(), UNK_ID) for t in tokens]   # no word has id 0 (<PAD>)

    @property
    def vector_words_added(self) -> int:
        return self.settings.get("vector_words", 0)

    def extend(self, words: list[str]) -> int:
        """Add the words of a vectors file that the vocabulary lacks (lower-cased for a lower-cased
        vocabulary), sorted, after the training words (which keep their ids); returns how many."""
        if self.vector_words_added:
            raise ValueError("the vocabulary already holds a vectors file's words")
        index, names = self.words.index, self.words.names
        if self.lowercase:
            words = [w.lower() for w in words]
        new = sorted(set(words) - set(index) - {PAD, UNK})
        self.words = Table(names + new, self.words.counts + [0] * len(new), sorted_from=len(names))
        self.settings["vector_words"] = len(new)
        return len(new)

    def vector_words(self) -> list[str]:
        """The words ``extend`` added (saved apart from vocab.json, in words.txt)."""
        k = self.vector_words_added
        return self.words.names[len(self.words) - k:] if k else []

    def add_ids(self, record: dict) -> dict:
        """Add the ids to a record that ``prepare`` returned (in place; returns it)."""
        for tok_key, _, ids_key in SEQUENCES:
            tokens = record.get(tok_key)
            if tokens is not None:
                record[ids_key] = self.word_ids(tokens)
        if record.get("tags") is not None:
            try:
                record["tag_ids"] = list(map(self.tags.index.__getitem__, record["tags"]))
            except KeyError as e:
                raise DataError(f"unknown tag {_q(e.args[0])} (not in the vocabulary's {len(self.tags)} tags)") from None
        if record.get("label") is not None:
            try:
                record["label_id"] = self.labels.index[record["label"]]
            except KeyError:
                raise DataError(f"unknown label {_q(record['label'])} (not in the vocabulary's "
                                f"{len(self.labels)} labels)") from None
        return record

    def to_dict(self) -> dict:
        """The vocabulary as JSON, without the words a vectors file added (``vector_words``)."""
        k = self.vector_words_added
        words = self.words.to_json()
        return {"format_version": FORMAT_VERSION, "lowercase": self.lowercase, **self.settings,
                "words": words[:len(words) - k], "tags": self.tags.to_json(),
                "labels": self.labels.to_json(), "chars": self.chars.to_json()}

    @classmethod
    def from_dict(cls, data: dict, name: str = "vocabulary") -> "Vocab":
        """The vocabulary of ``to_dict``; a model's carries the vectors' words under VECTOR_WORDS."""
        if not isinstance(data, dict) or "format_version" not in data:
            raise DataError("not a seqtool vocabulary (no format_version)", name)
        if data["format_version"] != FORMAT_VERSION:
            raise DataError(f"vocabulary format_version {data['format_version']} is not supported "
                            f"(this seqtool reads {FORMAT_VERSION}); rebuild it with seqtool vocab -o", name)
        try:
            tables = {key: Table.from_json(data[key]) for key in ("words", "tags", "labels", "chars")}
            added = data.get(VECTOR_WORDS, [])
            if len(added) != data.get("vector_words", 0):
                raise ValueError(f"{data.get('vector_words', 0)} vector words expected, {len(added)} given")
            if added:
                head = tables["words"]
                tables["words"] = Table(head.names + added, head.counts + [0] * len(added), sorted_from=len(head))
            settings = {k: v for k, v in data.items()
                        if k not in tables and k not in ("format_version", "lowercase", VECTOR_WORDS)}
            vocab = cls(**tables, lowercase=bool(data.get("lowercase")), settings=settings)
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"not a seqtool vocabulary ({type(e).__name__}: {e})", name) from None
        if vocab.words.names[:2] != [PAD, UNK]:
            raise DataError(f'not a seqtool vocabulary (words must start with "{PAD}", "{UNK}")', name)
        return vocab

    def to_json(self, path: str) -> None:
        """Write the vocabulary to ``path`` atomically, one table entry per line."""
        parts = []
        for key, value in self.to_dict().items():
            if isinstance(value, list) and value:
                value = "[\n  " + ",\n  ".join(map(dumps, value)) + "\n ]"
            else:
                value = dumps(value)
            parts.append(f" {_q(key)}: {value}")
        write_atomic(path, "{\n" + ",\n".join(parts) + "\n}\n")

    @classmethod
    def from_json(cls, path: str) -> "Vocab":
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(e.strerror or str(e), path) from None
        except UnicodeDecodeError:
            raise DataError("not a seqtool vocabulary (not UTF-8)", path) from None
        try:
            data = json.loads(text)
        except ValueError as e:
            raise DataError(f"not a seqtool vocabulary (line {e.lineno}: {e.msg})", path) from None
        return cls.from_dict(data, path)


def _ranked(counts: Counter, min_count: int, max_size: int | None) -> Table:
    """``<PAD>``, ``<UNK>`` and the names seen ``min_count`` times or more, by count then name.

    ``<UNK>`` counts the occurrences of the names left out.
    """
    kept = sorted(n for n, c in counts.items() if c >= min_count and n not in (PAD, UNK))
    kept.sort(key=counts.__getitem__, reverse=True)  # stable: equal counts stay in text order
    kept = kept[:max_size]
    freq = [counts[n] for n in kept]
    return Table([PAD, UNK] + kept, [0, sum(counts.values()) - sum(freq)] + freq)


class Counts:
    """Running counts over prepared records: what a Vocab is built from."""

    def __init__(self):
        self.records = 0
        self.tokens = Counter()  # as written (cased): characters and --lowercase derive from it
        self.tags = Counter()
        self.labels = Counter()

    def add(self, record: dict) -> None:
        """Count one record returned by ``prepare``."""
        self.records += 1
        for tok_key, _, _ in SEQUENCES:
            tokens = record.get(tok_key)
            if tokens:
                self.tokens.update(tokens)
        if record.get("tags"):
            self.tags.update(record["tags"])
        if record.get("label") is not None:
            self.labels[record["label"]] += 1

    def vocab(self, *, min_count: int = 1, max_size: int | None = None, lowercase: bool = False,
              char_min_count: int = 1) -> Vocab:
        """The Vocab of what was counted; DataError("no records") when nothing was."""
        if not self.records:
            raise DataError("no records")
        words = self.tokens
        if lowercase:
            words = Counter()
            for token, count in self.tokens.items():
                words[token.lower()] += count
        # Characters: tokens seen equally often are counted together as one string (Counter
        # counts in C), instead of a Python step per character of every distinct token.
        by_count = defaultdict(list)
        for token, count in self.tokens.items():
            by_count[count].append(token)
        chars = Counter()
        for count, tokens in by_count.items():
            for char, n in Counter("".join(tokens)).items():
                chars[char] += n * count
        tags = sorted(self.tags, key=lambda t: (t != "O", t))
        labels = sorted(self.labels, key=lambda lab: (isinstance(lab, str), lab))
        return Vocab(words=_ranked(words, min_count, max_size),
                     tags=Table(tags, [self.tags[t] for t in tags]),
                     labels=Table(labels, [self.labels[lab] for lab in labels]),
                     chars=_ranked(chars, char_min_count, None),
                     lowercase=lowercase,
                     settings={"min_count": min_count, "max_size": max_size,
                               "char_min_count": char_min_count, "records": self.records})


def build_vocab(records: Iterable[dict], *, min_count: int = 1, max_size: int | None = None,
                lowercase: bool = False, char_min_count: int = 1) -> Vocab:
    """Count raw records (any iterable, read once) into a Vocab."""
    counts = Counts()
    for record in records:
        counts.add(prepare(record))
    return counts.vocab(min_count=min_count, max_size=max_size, lowercase=lowercase,
                        char_min_count=char_min_count)


def apply_vocab(vocab: Vocab, records: Iterable[dict]) -> Iterator[dict]:
    """Every raw record with its ids added (streams)."""
    return map(vocab.encode, records)
