"""Pretrained vectors (seqtool/embeddings.py): file formats, case fallback, coverage, freezing, train --embeddings."""
import gzip
import json

import numpy as np
import pytest

from seqtool.model.embeddings import FrozenEmbedding, load_vectors, vector_dim
from seqtool.errors import DataError, UsageError
from seqtool.model.layers import Context
from seqtool.data.packing import make_packing
from seqtool.model.tasks import word_embedding
from seqtool.stages.train import run_train

VECTORS = {"the": [0.1, 0.2, 0.3], "paris": [1.0, 2.0, 3.0], "Paris": [4.0, 5.0, 6.0], "berlin": [7.0, 8.0, 9.0]}
WORDS = ["<PAD>", "<UNK>", "the", "Paris", "Berlin", "zzz"]


def _write(path, header=False, gz=False, vectors=VECTORS):
    lines = [f"{len(vectors)} 3\n"] if header else []
    lines += [w + " " + " ".join(map(str, v)) + "\n" for w, v in vectors.items()]
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    return str(path)


@pytest.mark.parametrize("header,gz", [(False, False), (True, False), (False, True), (True, True)])
def test_glove_and_word2vec_text_files_plain_and_gzipped(tmp_path, header, gz):
    path = _write(tmp_path / ("v.txt.gz" if gz else "v.txt"), header, gz)
    assert vector_dim(path) == 3
    table = np.zeros((len(WORDS), 3), dtype=np.float32)
    cov = load_vectors(path, WORDS, table)
    assert (cov.exact, cov.lowercase, cov.total, cov.dim) == (2, 1, 4, 3)
    np.testing.assert_allclose(table[2], VECTORS["the"])
    np.testing.assert_allclose(table[3], VECTORS["Paris"])     # the exact form wins over "paris"
    np.testing.assert_allclose(table[4], VECTORS["berlin"])    # lower-case fallback
    assert not table[[0, 1, 5]].any()
    assert cov.summary("v") == "v: 3 of 4 words have a vector (75.0%; 1 through lower case)"


def test_a_lower_cased_vocabulary_finds_cased_vectors(tmp_path):
    path = _write(tmp_path / "v.txt", vectors={"The": [0.1, 0.2, 0.3], "BERLIN": [7.0, 8.0, 9.0]})
    words = ["<PAD>", "<UNK>", "the", "berlin", "zzz"]
    table = np.zeros((len(words), 3), dtype=np.float32)
    cov = load_vectors(path, words, table)
    assert (cov.exact, cov.lowercase) == (0, 2)
    np.testing.assert_allclose(table[2:4], [[0.1, 0.2, 0.3], [7.0, 8.0, 9.0]], rtol=1e-6)


def test_wrong_dimension_is_an_error_with_the_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 1 2 3\nParis 1 2\n")
    with pytest.raises(DataError) as e:
        load_vectors(str(path), WORDS, np.zeros((len(WORDS), 3)))
    assert str(e.value) == f"{path}:2: vector of 2 numbers, expected 3"


def test_frozen_embedding_adds_no_gradient():
    layer = FrozenEmbedding(5, 2)
    y, back = layer(np.array([1, 2, 3]), Context(make_packing([3])), True)
    back(np.ones_like(y))
    assert not layer.grads["E"].any() and len(layer.touched_rows("E")) == 0


def _corpus(tmp_path):
    records = [{"tokens": ["the", "Paris", "x"], "tags": ["O", "B-LOC", "O"]},
               {"tokens": ["Berlin", "the"], "tags": ["B-LOC", "O"]}] * 10
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_train_with_frozen_embeddings_keeps_the_file_vectors(tmp_path):
    from seqtool.predict import LoadedModel

    vec = _write(tmp_path / "v.txt")
    out = str(tmp_path / "m")
    run_train(_corpus(tmp_path), output=out, progress=False, threads=1, epochs=2, hidden=4, embeddings=vec,
              freeze_embeddings=True, lowercase=False)
    loaded = LoadedModel(out)
    assert loaded.config["embed"] == 3
    E = word_embedding(loaded.model).params["E"]
    for word in ("the", "Paris"):
        np.testing.assert_allclose(E[loaded.vocab.words.get(word)], VECTORS[word], rtol=1e-6)
    np.testing.assert_allclose(E[loaded.vocab.words.index["Berlin"]], VECTORS["berlin"], rtol=1e-6)


def test_train_embeddings_move_unless_frozen_and_embed_must_match(tmp_path):
    vec = _write(tmp_path / "v.txt")
    out = str(tmp_path / "m")
    run_train(_corpus(tmp_path), output=out, progress=False, threads=1, epochs=2, hidden=4, embeddings=vec,
              lr=0.05, lowercase=False)
    from seqtool.predict import LoadedModel

    loaded = LoadedModel(out)
    E = word_embedding(loaded.model).params["E"]
    assert not np.allclose(E[loaded.vocab.words.index["Paris"]], VECTORS["Paris"])
    with pytest.raises(UsageError) as e:
        run_train(_corpus(tmp_path), output=out, progress=False, embeddings=vec, embed=50)
    assert str(e.value) == f"--embed 50 does not match the 3-dimensional vectors of {vec}"


# ---------------------------------------------------------------- the vectors' words join the vocabulary

EXTRA = {**VECTORS, "lyon": [0.5, -0.5, 0.25], "oslo": [-1.0, 0.5, 2.0], "rome": [3.0, 1.0, -2.0]}


def _train_with_vectors(tmp_path, name="m", **options):
    vec = _write(tmp_path / "v.txt", vectors=EXTRA)
    out = str(tmp_path / name)
    settings = dict(progress=False, threads=1, epochs=2, hidden=4, lr=0.05, char=False, shape_dim=0,
                    embeddings=vec)
    run_train(_corpus(tmp_path), output=out, **{**settings, **options})
    from seqtool.stages.tag import LoadedModel

    return LoadedModel(out), out


@pytest.mark.parametrize("lowercase", [False, True])
def test_a_word_training_never_saw_keeps_its_vector_in_the_model_and_at_tag_time(tmp_path, lowercase):
    from seqtool.model.token_cache import TokenCache

    loaded, _ = _train_with_vectors(tmp_path, lowercase=lowercase)
    E = word_embedding(loaded.model).params["E"]
    words = loaded.vocab.words
    added = ["lyon", "oslo", "rome"] if lowercase else ["berlin", "lyon", "oslo", "paris", "rome"]
    assert words.names[-len(added):] == added and words.counts[-len(added):] == [0] * len(added)
    for word in ("lyon", "oslo", "rome"):           # untouched by training: exactly as loaded
        assert E[words.get(word)].tolist() == np.float32(EXTRA[word]).tolist()
    assert not np.allclose(E[words.get("the" if lowercase else "Paris")],
                           EXTRA["the" if lowercase else "Paris"])        # trained rows did move
    lyon = words.get("lyon")
    assert loaded.vocab.word_ids(["Lyon", "lyon", "Zzz"]) == [lyon, lyon, 1]   # exact, then lower case
    assert loaded.encode({"tokens": ["Lyon", "zzz"]})["ids"] == [lyon, 1]       # what tag reads without a cache
    cache = TokenCache.build(loaded.model, loaded.vocab)
    _, slots = cache.lookup([["Lyon", "zzz", "qqq"]])
    rows = cache.table[:, slots]                    # (S, 3, G*H): the rows tag computes these tokens with
    np.testing.assert_allclose(rows[:, 0], cache._project(np.array([lyon]), None)[:, 0], rtol=1e-6)
    np.testing.assert_allclose(rows[:, 1], rows[:, 2])                     # both <UNK>
    assert not np.allclose(rows[:, 0], rows[:, 1])


def test_vectors_limit_and_the_model_directory(tmp_path, capsys):
    loaded, out = _train_with_vectors(tmp_path, vectors_limit=5, lowercase=False)
    # the file's first 5 words: the paris Paris berlin lyon; "the" and "Paris" were training words already
    assert loaded.vocab.words.names[-3:] == ["berlin", "lyon", "paris"]          # sorted, for bisection
    assert loaded.vocab.words.get("oslo") is None
    err = capsys.readouterr().err
    assert "v.txt: 7 vectors read, 3 words added to the vocabulary (9 words)" in err
    assert "3 of 4 training-vocabulary words have a vector (75.0%; 1 through lower case)" in err
    assert "tokens with a vector: train 80.0%" in err          # the, Paris, Berlin, the of the, Paris, x, Berlin, the
    vocab_doc = json.loads((tmp_path / "m" / "vocab.json").read_text())
    assert [w for w, _ in vocab_doc["words"]] == ["<PAD>", "<UNK>", "the", "Berlin", "Paris", "x"]
    assert (tmp_path / "m" / "words.txt").read_text() == "berlin\nlyon\nparis\n"
    table = np.load(tmp_path / "m" / "embedding.npy")
    np.testing.assert_array_equal(table, word_embedding(loaded.model).params["E"])
    assert isinstance(word_embedding(loaded.model).params["E"].base, np.memmap)   # mapped, not read
    # a model without vectors may replace it (the large files are part of a model directory)
    run_train(_corpus(tmp_path), output=out, progress=False, threads=1, epochs=1, hidden=4, char=False)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "history.tsv", "metrics.json",
                                                                    "vocab.json", "weights.npz"]


def test_a_model_trained_without_embeddings_has_only_the_training_words(tmp_path):
    from seqtool.stages.tag import LoadedModel

    out = str(tmp_path / "m")
    run_train(_corpus(tmp_path), output=out, progress=False, threads=1, epochs=1, hidden=4, lowercase=False)
    loaded = LoadedModel(out)
    assert loaded.vocab.words.names == ["<PAD>", "<UNK>", "the", "Berlin", "Paris", "x"]
    assert "word_table" not in loaded.config and loaded.vocab.word_ids(["paris"]) == [1]   # no case fallback
    assert not (tmp_path / "m" / "words.txt").exists()


def test_vectors_limit_zero_fills_only_training_words(tmp_path):
    loaded, _ = _train_with_vectors(tmp_path, vectors_limit=0, lowercase=False)
    assert loaded.vocab.words.names == ["<PAD>", "<UNK>", "the", "Berlin", "Paris", "x"]
    assert "word_table" not in loaded.config


def test_a_bad_number_names_its_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 1 2 3\nParis 1 x 3\n")
    with pytest.raises(DataError) as e:
        load_vectors(str(path), WORDS, np.zeros((len(WORDS), 3), np.float32))
    assert str(e.value) == f"{path}:2: the vector holds something that is not a number"


def test_the_sorted_tail_is_found_by_bisection():
    from seqtool.data.vocab import Table

    table = Table(["<PAD>", "<UNK>", "zz", "aa", "b", "d", "f"], [0] * 7, sorted_from=4)
    assert [table.get(w, -1) for w in ("zz", "aa", "b", "d", "f", "a", "c", "g", "<PAD>")] == \
        [2, 3, 4, 5, 6, -1, -1, -1, -1]
