"""How a predicted record is written (``seqtool tag --output-format``): JSON Lines, CoNLL columns
``token [gold] predicted``, an inline line to read in a terminal, or fastText's ``__label__x p``."""
from seqtool.data.fasttext import prediction_line
from seqtool.data.jsonl import dumps


def conll_lines(rec: dict) -> str:
    """A tagged record as CoNLL lines, a blank line after the sentence: ``token gold predicted`` when the
    record had gold tags, ``token predicted`` when it had none (no made-up gold column to score)."""
    gold = rec.get("gold_tags")
    if gold is None:
        return "".join(f"{t} {p}\n" for t, p in zip(rec["tokens"], rec["tags"])) + "\n"
    return "".join(f"{t} {g} {p}\n" for t, g, p in zip(rec["tokens"], gold, rec["tags"])) + "\n"


def inline_line(rec: dict) -> str:
    """A predicted record for a person at a terminal, one line: a tagger's entities in brackets followed by
    their type, ``[John]PER lives in [Paris]LOC`` (in the original text when the record came from ``text``,
    else in its tokens joined by spaces); a classifier's ``label<TAB>text``."""
    if "label" in rec and "tags" not in rec:
        return f"{rec['label']}\t{_shown_text(rec)}\n"
    text = rec.get("text")
    entities = rec.get("entities", [])
    if isinstance(text, str) and all("start_char" in e for e in entities):
        cuts = [(e["start_char"], e["end_char"], e["type"]) for e in entities]
    else:
        tokens = rec["tokens"]
        text = " ".join(tokens)
        starts = [0]
        for token in tokens:
            starts.append(starts[-1] + len(token) + 1)      # token i spans starts[i] .. starts[i+1] - 1
        cuts = [(starts[e["start"]], starts[e["end"]] - 1, e["type"]) for e in entities]
    pieces, at = [], 0
    for start, end, typ in cuts:
        pieces += [text[at:start], "[", text[start:end], "]", typ]
        at = end
    return ("".join(pieces) + text[at:]).replace("\n", " ") + "\n"


def _shown_text(rec: dict) -> str:
    text = rec.get("text")
    return " ".join(text.split()) if isinstance(text, str) else " ".join(rec.get("tokens", []))


def json_line(rec: dict) -> str:
    return dumps(rec) + "\n"


# --output-format NAME -> a predicted record as the text written for it
OUTPUT_FORMATS = {"jsonl": json_line, "conll": conll_lines, "inline": inline_line, "fasttext": prediction_line}
