"""The tokenizer: each rule of the table on examples, and the properties that hold for any text."""
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqtool.data.tokenize import RULES, tokenize


@pytest.mark.parametrize("text, tokens", [
    ("Hello, world!", ["Hello", ",", "world", "!"]),
    ("see https://t.co/kgXuYb6diH.", ["see", "https://t.co/kgXuYb6diH", "."]),
    ("(www.example.org/a?b=1)", ["(", "www.example.org/a?b=1", ")"]),
    ("great :) :-( ;D :'( >:( =P :/ :)))", ["great", ":)", ":-(", ";D", ":'(", ">:(", "=P", ":/", ":)))"]),
    ("love it <3 </3 ^_^ -_-", ["love", "it", "<3", "</3", "^_^", "-_-"]),
    ("x:Done a:3b", ["x", ":", "Done", "a", ":", "3b"]),
    ("@bammyxoxo thanks #FollowFriday!", ["@bammyxoxo", "thanks", "#FollowFriday", "!"]),
    ("fish &amp; chips &#39;", ["fish", "&amp;", "chips", "&#39;"]),
    ("3.14 1,000 at 10:30 on 1996-08-22", ["3.14", "1,000", "at", "10:30", "on", "1996-08-22"]),
    ("I don't like well-known covid-19 stuff", ["I", "don't", "like", "well-known", "covid-19", "stuff"]),
    ("'quoted' rock’n’roll", ["'", "quoted", "'", "rock’n’roll"]),
    ("wait... what?! no!!! -- ok", ["wait", "...", "what", "?!", "no", "!!!", "--", "ok"]),
    ("not happy :( 😀😀", ["not", "happy", ":(", "😀", "😀"]),
    ("  \t\n ", []),
    ("Zürich café naïve", ["Zürich", "café", "naïve"]),
])
def test_examples(text, tokens):
    assert tokenize(text) == tokens


def test_every_rule_is_documented_in_order():
    names = [name for name, _ in RULES]
    assert names[-1] == "other" and len(set(names)) == len(names)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert re.findall(rf"^\| ({'|'.join(names)}) \|", readme, re.M) == names


@given(st.text())
def test_tokens_cover_the_text_without_its_whitespace(text):
    tokens = tokenize(text)
    assert all(tokens) and not any(any(c.isspace() for c in t) for t in tokens)
    assert "".join(tokens) == "".join(text.split())


@given(st.lists(st.sampled_from(["@ann", "#tag", ":)", "<3", "https://x.org/p", "word", "3.5", ","]), max_size=8))
def test_kept_whole_pieces_stay_whole_between_spaces(pieces):
    assert tokenize(" ".join(pieces)) == pieces
