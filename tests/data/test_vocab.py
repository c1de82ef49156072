"""Vocabularies: the record contract (prepare), building, applying, saving and loading."""
import json

import pytest

from seqtool.errors import DataError, UsageError
from seqtool.data.vocab import FORMAT_VERSION, PAD, UNK, Counts, Vocab, apply_vocab, build_vocab, prepare

TAGGED = [
    {"id": 1, "tokens": ["Ann", "saw", "Bo", "."], "tags": ["B-PER", "O", "B-PER", "O"]},
    {"id": 2, "tokens": ["Bo", "saw", "the", "sea", "."], "tags": ["B-PER", "O", "O", "O", "O"]},
    {"id": 3, "tokens": ["The", "sea", "!"], "tags": ["O", "O", "O"], "extra": {"keep": [1]}},
]


@pytest.fixture
def vocab() -> Vocab:
    return build_vocab(TAGGED)


def test_words_are_pad_unk_then_by_count_then_text(vocab):
    assert vocab.words.names == [PAD, UNK, ".", "Bo", "saw", "sea", "!", "Ann", "The", "the"]
    assert vocab.words.counts == [0, 0, 2, 2, 2, 2, 1, 1, 1, 1]


def test_tags_put_o_first_then_sorted(vocab):
    assert vocab.tags.names == ["O", "B-PER"]
    assert vocab.tags.counts == [9, 3]


def test_encode_adds_ids_and_keeps_every_other_key(vocab):
    out = vocab.encode(TAGGED[2])
    assert out == {**TAGGED[2], "ids": [8, 5, 6], "tag_ids": [0, 0, 0]}
    assert TAGGED[2] == {"id": 3, "tokens": ["The", "sea", "!"], "tags": ["O", "O", "O"],
                         "extra": {"keep": [1]}}  # the input is not changed


def test_unknown_words_read_as_unk_and_literal_pad_is_not_padding(vocab):
    assert vocab.encode({"tokens": ["Ann", "Zed", "<PAD>", "<UNK>"]})["ids"] == [7, 1, 1, 1]


def test_unknown_tag_and_label_are_errors(vocab):
    with pytest.raises(DataError, match=r'^unknown tag "B-LOC" \(not in the vocabulary\'s 2 tags\)$'):
        vocab.encode({"tokens": ["Ann"], "tags": ["B-LOC"]})
    with pytest.raises(DataError, match=r'^unknown label "spam" \(not in the vocabulary\'s 0 labels\)$'):
        vocab.encode({"tokens": ["Ann"], "label": "spam"})


def test_min_count_max_size_and_unk_count():
    v = build_vocab(TAGGED, min_count=2)
    assert v.words.names == [PAD, UNK, ".", "Bo", "saw", "sea"]
    assert v.words.counts[1] == 4  # Ann, !, The, the
    assert build_vocab(TAGGED, max_size=2).words.names == [PAD, UNK, ".", "Bo"]


def test_lowercase_merges_counts_and_emits_tokens_as_written():
    v = build_vocab(TAGGED, lowercase=True)
    assert v.words.names[:4] == [PAD, UNK, ".", "bo"] and "the" in v.words.names and "The" not in v.words.names
    out = v.encode({"tokens": ["THE", "Sea"]})
    assert out["tokens"] == ["THE", "Sea"]
    assert out["ids"] == [v.words.index["the"], v.words.index["sea"]]


def test_characters_are_counted_as_written():
    v = build_vocab([{"tokens": ["aA", "ab"]}], lowercase=True, char_min_count=2)
    assert v.chars.names == [PAD, UNK, "a"]
    assert v.chars.counts == [0, 2, 2]


def test_text_and_labels_classification():
    v = build_vocab([{"text": "not happy :(", "label": "negative"}, {"text": "happy :)", "label": "positive"},
                     {"tokens": ["meh"], "label": "negative"}])
    assert v.labels.names == ["negative", "positive"] and v.labels.counts == [2, 1]
    out = v.encode({"text": "happy :(", "label": "positive"})
    assert out["tokens"] == ["happy", ":("]
    assert out["ids"] == [v.words.index["happy"], v.words.index[":("]]
    assert out["label_id"] == 1


def test_integer_labels_sort_before_strings():
    assert build_vocab([{"tokens": ["a"], "label": lab} for lab in ["b", 10, 2]]).labels.names == [2, 10, "b"]


def test_pairs_get_q1_and_q2_tokens_and_ids():
    v = build_vocab([{"id": 7, "q1": "How do I cook?", "q2": "How to cook rice?", "is_duplicate": 1}])
    out = v.encode({"id": 8, "q1": "cook rice?", "q2": "How?", "is_duplicate": 0})
    assert out["q1_tokens"] == ["cook", "rice", "?"] and out["q2_tokens"] == ["How", "?"]
    assert out["q1_ids"] == [v.words.index[w] for w in ["cook", "rice", "?"]]
    assert out["q2_ids"] == [v.words.index["How"], v.words.index["?"]]
    assert out["is_duplicate"] == 0 and "ids" not in out


@pytest.mark.parametrize("record, message", [
    ({"tokens": ["a", "b"], "tags": ["O"]}, '"tags" has 1 items but "tokens" has 2'),
    ({"text": "a b", "tags": ["O"]}, '"tags" has 1 items but "tokens" has 2'),
    ({"tokens": "a b"}, '"tokens" must be a list of strings'),
    ({"tokens": ["a", 1]}, '"tokens" must be a list of strings'),
    ({"tokens": ["a"], "tags": [None]}, '"tags" must be a list of strings'),
    ({"tokens": []}, '"tokens" is empty'),
    ({"text": "   "}, '"text" has no tokens'),
    ({"text": 5}, '"text" must be a string'),
    ({"id": 1}, 'no "tokens", "text" or "q1"/"q2" to read'),
    ({"q1": "a?"}, 'a pair needs both "q1" and "q2"'),
    ({"tokens": ["a"], "label": 1.5}, '"label" must be a string or an integer'),
    ({"tokens": ["a"], "label": True}, '"label" must be a string or an integer'),
    ({"q1": "a", "q2": "b", "is_duplicate": 2}, '"is_duplicate" must be 0 or 1'),
])
def test_records_that_break_the_contract(record, message):
    with pytest.raises(DataError) as e:
        prepare(record)
    assert str(e.value) == message


def test_no_records_is_an_error():
    with pytest.raises(DataError, match="^no records$"):
        build_vocab([])


def test_apply_vocab_streams(vocab):
    def records():
        yield TAGGED[0]
        raise AssertionError("read past the first record")

    assert next(apply_vocab(vocab, records()))["ids"] == [7, 4, 3, 2]  # Ann saw Bo .


def test_json_round_trip_one_entry_per_line(vocab, tmp_path):
    path = tmp_path / "vocab.json"
    vocab.to_json(str(path))
    text = path.read_text()
    assert text.startswith('{\n "format_version": 1,\n "lowercase": false,\n')
    assert '\n  ["<PAD>",0],\n  ["<UNK>",0],\n  [".",2],\n' in text
    loaded = Vocab.from_json(str(path))
    assert loaded == vocab
    assert loaded.settings == {"min_count": 1, "max_size": None, "char_min_count": 1, "records": 3}
    assert loaded.encode(TAGGED[0]) == vocab.encode(TAGGED[0])


def test_counts_can_be_fed_by_hand():
    counts = Counts()
    for record in TAGGED:
        counts.add(prepare(record))
    assert counts.vocab() == build_vocab(TAGGED)


@pytest.mark.parametrize("content, message", [
    ("{", "not a seqtool vocabulary (line 1: Expecting property name enclosed in double quotes)"),
    ("[]", "not a seqtool vocabulary (no format_version)"),
    ('{"format_version": 99}', f"vocabulary format_version 99 is not supported (this seqtool reads "
                               f"{FORMAT_VERSION}); rebuild it with seqtool vocab -o"),
    ('{"format_version": 1, "words": []}', "not a seqtool vocabulary (KeyError: 'tags')"),
    ('{"format_version": 1, "words": [["a", 1]], "tags": [], "labels": [], "chars": []}',
     'not a seqtool vocabulary (words must start with "<PAD>", "<UNK>")'),
])
def test_bad_vocabulary_files(tmp_path, content, message):
    path = tmp_path / "v.json"
    path.write_text(content)
    with pytest.raises(DataError) as e:
        Vocab.from_json(str(path))
    assert str(e.value) == f"{path}: {message}"


def test_missing_vocabulary_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="No such file or directory"):
        Vocab.from_json(str(tmp_path / "nope.json"))


def test_vocab_file_is_plain_json(vocab, tmp_path):
    path = tmp_path / "v.json"
    vocab.to_json(str(path))
    data = json.loads(path.read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert data["tags"] == [["O", 9], ["B-PER", 3]]
    assert data["chars"][:2] == [[PAD, 0], [UNK, 0]]
