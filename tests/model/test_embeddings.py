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
        np.testing.assert_allclose(E[loaded.vocab.words.index[word]], VECTORS[word], rtol=1e-6)
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
