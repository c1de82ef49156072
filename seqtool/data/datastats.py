"""What a data set holds, counted in one pass with memory flat in its length (``seqtool inspect``).

``DataStats`` counts records, sequences, tokens, tags, entity types, labels and duplicate flags of
prepared records (data/vocab.prepare), and sequence lengths as a histogram (percentiles without
keeping a list). ``unseen`` names the gold tags or labels of one set that another never had:
``seqtool eval`` warns with it, ``seqtool inspect --dev`` reports it.
"""
from collections import Counter
from typing import Iterable

from seqtool.data.metrics import spans
from seqtool.data.vocab import SEQUENCES, UNK_ID, Vocab

PERCENTILES = (50, 90, 95, 99)


class DataStats:
    """Counts over the prepared records passed to ``add``; ``words`` is kept for out-of-vocabulary rates."""

    def __init__(self):
        self.records = self.sequences = self.tokens = 0
        self.lengths: Counter = Counter()
        self.words: Counter = Counter()
        self.tags: Counter = Counter()
        self.entities: Counter = Counter()
        self.labels: Counter = Counter()
        self.duplicates: Counter = Counter()

    def add(self, record: dict) -> None:
        self.records += 1
        for tok_key, _, _ in SEQUENCES:
            tokens = record.get(tok_key)
            if tokens is not None:
                self.sequences += 1
                self.tokens += len(tokens)
                self.lengths[len(tokens)] += 1
                self.words.update(tokens)
        tags = record.get("tags")
        if tags is not None:
            self.tags.update(tags)
            self.entities.update(typ for typ, _, _ in spans(tags))
        if record.get("label") is not None:
            self.labels[record["label"]] += 1
        if record.get("is_duplicate") is not None:
            self.duplicates[int(record["is_duplicate"])] += 1

    def length_summary(self) -> dict:
        """min, the percentiles of PERCENTILES and max of the sequence lengths in tokens (nearest rank)."""
        if not self.sequences:
            return {}
        out = {"min": min(self.lengths)}
        ranked = sorted(self.lengths.items())
        for p in PERCENTILES:
            rank = max(1, -(-p * self.sequences // 100))       # nearest rank: ceil(p/100 * n)
            seen = 0
            for length, count in ranked:
                seen += count
                if seen >= rank:
                    out[f"p{p}"] = length
                    break
        out["max"] = max(self.lengths)
        out["mean"] = round(self.tokens / self.sequences, 2)
        return out

    def to_dict(self) -> dict:
        out = {"records": self.records, "sequences": self.sequences, "tokens": self.tokens,
               "distinct_words": len(self.words), "length": self.length_summary()}
        for key, counts in (("tags", self.tags), ("entities", self.entities), ("labels", self.labels),
                            ("is_duplicate", self.duplicates)):
            if counts:
                out[key] = {str(k): v for k, v in counts.most_common()}
        return out


def oov(words: Counter, vocab: Vocab | None = None, known: Iterable[str] | None = None) -> dict:
    """The out-of-vocabulary rate of ``words`` (token counts): against a ``vocab`` (a word it reads as
    <UNK>, lower-casing as it does) or else a set of ``known`` words. Tokens and distinct words."""
    if vocab is not None:
        names = list(words)
        unknown = {w for w, i in zip(names, vocab.word_ids(names)) if i == UNK_ID}
    else:
        known = set(known or ())
        unknown = {w for w in words if w not in known}
    total = sum(words.values())
    missed = sum(words[w] for w in unknown)
    return {"tokens": missed, "rate": round(missed / total, 4) if total else 0.0,
            "distinct": len(unknown), "distinct_rate": round(len(unknown) / len(words), 4) if words else 0.0,
            "examples": sorted(unknown, key=lambda w: (-words[w], w))[:10]}      # most frequent first


def unseen(gold: Iterable, known: Iterable) -> list:
    """The values of ``gold`` (tags, labels) missing from ``known``, in a stable order."""
    known = set(known)
    return sorted({g for g in gold if g not in known}, key=lambda v: (not isinstance(v, int), str(v)))
