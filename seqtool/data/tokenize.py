"""The tokenizer for ``text``, ``q1`` and ``q2`` fields: one regex table.

At each position the first rule of ``RULES`` that matches takes the longest
text it can; whitespace separates tokens and is never part of one. The last
rule takes any single other character, so every non-space character lands in
exactly one token: joining the tokens gives the text without its whitespace.
There is no lowercasing and no Unicode normalisation (``seqtool vocab
--lowercase`` lowercases the lookup, not the tokens).

    rule       examples                             note
    url        https://t.co/kgXu, www.example.org   trailing . , ! ? ; : ) ] } ' not included
    emoticon   :) :-( ;D :'( >:( =P :/ :))) <3 </3 ^_^ -_-
                                                    not when a letter or digit follows (":Done")
    mention    @bammyxoxo                           @ + letters, digits, _
    hashtag    #FollowFriday
    entity     &amp; &lt; &#39;                     HTML entities as tweets carry them
    number     3.14 1,000 10:30 1996-08-22          digits joined by . , : / -
    word       don't well-known covid-19 3rd _x     letters, digits, _ ; inner ' ’ - kept
    repeat     ... !!! ?! --                        runs of . (2+), of ! and ? (2+), of - (2+)
    other      . , ( " $ 😀                         any other single character
"""
import re

RULES = (
    ("url", r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,!?;:)\]}'’]"),
    ("emoticon", r"(?:>?[:;=][-'^o*]?[)(\][DPpOo0/\\|3*@$]+|</?3+|\^_*\^|-_+-)(?!\w)"),
    ("mention", r"@\w+"),
    ("hashtag", r"#\w+"),
    ("entity", r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z]+);"),
    ("number", r"\d+(?:[.,:/-]\d+)+"),
    ("word", r"\w+(?:['’-]\w+)*"),
    ("repeat", r"\.{2,}|[!?]{2,}|-{2,}"),
    ("other", r"\S"),
)

_TOKEN = re.compile("|".join(f"(?:{pattern})" for _, pattern in RULES))


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``, by the rules of ``RULES``, in order."""
    return _TOKEN.findall(text)


def token_offsets(text: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    """Each token's (start, end) character offsets in ``text`` (end exclusive), or None when the tokens
    are not ``text``'s substrings in order (tokens given beside a text they were not made from)."""
    offsets, pos = [], 0
    for token in tokens:
        start = text.find(token, pos)
        if start < 0 or text[pos:start].strip():
            return None
        pos = start + len(token)
        offsets.append((start, pos))
    return offsets
