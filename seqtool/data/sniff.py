"""Telling a wrong ``--format`` from bad data: what a line of one format looks like to another's reader.

A JSONL file read as CoNLL columns "tags" tokens like ``{"id":``; plain text read
as JSONL fails on its first character. The readers ask these functions about
their first line (or first sentence) and stop with the format the input looks
like, instead of producing garbage or a bare parse error.
"""
from seqtool.data.tags import tag_like


def looks_like_json(text: str) -> bool:
    """A line that starts as a JSON object or array of them does (a lone ``{`` token does not)."""
    text = text.strip()
    return text[:2] in ('{"', '[{', '["', "{}", "[]") or (text[:1] == "{" and text[-1:] == "}" and ":" in text)


def not_json_hint(raw: bytes) -> str | None:
    """For the first line of a JSONL input that is not JSON: what it looks like and the option to use,
    or None when it does start like JSON (then it is merely broken)."""
    text = raw.decode("utf-8", "replace").strip()
    if not text or text[0] in '{["':
        return None
    cols = text.split()
    if text.startswith("__label__"):
        return "not JSON but fastText lines (__label__...): use --format fasttext"
    if 2 <= len(cols) <= 6 and all(tag_like(c) for c in cols[1:]):
        return "not JSON but looks like CoNLL columns (token ... tag): use --format conll"
    if "\t" in text:
        return "not JSON but tab-separated: use --format tsv (with --columns, or --format conll for CoNLL columns)"
    if "," in text and " " not in text:
        return "not JSON but looks like a CSV header or row: use --format csv"
    return "is not JSON; for plain text use --format text"


def conll_first_sentence_problem(rows: list[list[str]], tag_index: int | None, explicit: bool) -> str | None:
    """What is wrong with a CoNLL input whose first sentence's lines split into ``rows``, or None.

    JSON lines, lines of varying column counts (plain text) and a tag column without a
    single tag-like value all mean the input is not CoNLL columns.
    """
    drop = "drop --format conll" if explicit else "use --format jsonl"
    if looks_like_json(" ".join(rows[0])):
        return f"looks like JSONL, not CoNLL columns: {drop}"
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        return (f"lines of {min(widths)} to {max(widths)} columns: looks like plain text, not CoNLL columns: "
                "use --format text")
    if tag_index is not None and not any(tag_like(r[tag_index]) for r in rows):
        shown = ", ".join(repr(r[tag_index]) for r in rows[:3])
        return (f"the tag column holds no tag ({shown}, ...): for plain text use --format text; "
                "for CoNLL without tags, --tag-column 0")
    return None
