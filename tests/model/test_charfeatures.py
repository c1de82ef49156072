"""Character features (seqtool/charfeatures.py, seqtool/kernels/chars.py): ids, gradients, torch parity."""
import numpy as np
import pytest

from seqtool.data.chars import CHAR_WIDTH, SHAPES, char_matrix, char_row, word_shape
from seqtool.model.charfeatures import CharCNN, WordFeatures
from seqtool.model.gradcheck import gradient_check
from seqtool.model.layers import Context
from seqtool.data.packing import make_packing

INDEX = {c: i for i, c in enumerate("<>abcdefghijklmnopqrstuvwxyzABCDEFG0123-.", start=0) if i >= 2}


def _chars(rng, N=7, C=12, W=6):
    lengths = rng.integers(1, W + 1, size=N)
    lengths[0] = W                       # a word filling the whole width
    chars = np.zeros((N, W), dtype=np.int32)
    for n, L in enumerate(lengths):
        chars[n, :L] = rng.integers(1, C, size=L)
    return chars


def test_shapes():
    got = [SHAPES[word_shape(t)] for t in ["the", "Paris", "EU", "McDonald", "1996", "1996-08-22", ",", "A", "a.b."]]
    assert got == ["lower", "Title", "UPPER", "mIxed", "digits", "alnum-digit", "punct", "X", "other"]


def test_char_rows_truncate_long_words_keeping_both_ends_and_mark_unknown_characters():
    row = char_row("ab€", INDEX, width=5)
    assert row == [word_shape("ab€"), INDEX["a"], INDEX["b"], 1, 0, 0]
    long = "abcdefghijklmnopqrstuvwxyz"
    row = char_row(long, INDEX)
    assert len(row) == 1 + CHAR_WIDTH
    assert row[1:] == [INDEX[c] for c in long[:10] + long[-10:]]
    m = char_matrix([["ab", "c"], ["ab"]], INDEX, width=4)
    assert m.shape == (3, 5) and m.dtype == np.int32
    assert (m[0] == m[2]).all()


@pytest.mark.parametrize("window", [1, 3, 5])
def test_char_cnn_gradient_float64(window):
    rng = np.random.default_rng(window)
    layer = CharCNN(12, dim=4, filters=5, window=window, dtype=np.float64, rng=rng)
    chars = _chars(rng)
    errors = gradient_check(layer, chars, lambda: Context(make_packing([len(chars)])))
    assert max(errors.values()) < 1e-6, errors


def test_word_features_gradient_float64():
    rng = np.random.default_rng(3)
    layer = WordFeatures(20, 6, 12, char_dim=4, char_filters=5, shape_dim=3, dtype=np.float64, rng=rng)
    chars = np.concatenate([rng.integers(1, len(SHAPES), size=(7, 1)).astype(np.int32), _chars(rng)], axis=1)
    ids = rng.integers(1, 20, size=7)
    y, _ = layer((ids, chars), Context(make_packing([7])), False)
    assert y.shape == (7, 6 + 5 + 3)
    errors = gradient_check(layer, (ids, chars), lambda: Context(make_packing([7])))
    assert max(errors.values()) < 1e-6, errors


def test_empty_word_gives_the_bias():
    layer = CharCNN(5, dim=2, filters=3, rng=np.random.default_rng(0))
    layer.params["b"][:] = [1, 2, 3]
    y, back = layer(np.zeros((1, 4), dtype=np.int32), None, False)
    np.testing.assert_array_equal(y, [[1, 2, 3]])
    back(np.ones((1, 3), dtype=np.float32))
    np.testing.assert_array_equal(layer.grads["b"], [1, 1, 1])
    assert not layer.grads["W"].any()


@pytest.mark.requires_torch
@pytest.mark.parametrize("window", [1, 3])
def test_char_cnn_matches_torch_conv1d_and_max(torch, window):
    """Each word alone: <PAD>*h + chars + <PAD>*h -> nn.Embedding -> nn.Conv1d -> max over positions."""
    rng = np.random.default_rng(0)
    layer = CharCNN(12, dim=4, filters=5, window=window, dtype=np.float64, rng=rng)
    chars = _chars(rng)
    y, backward = layer(chars, None, True)
    dy = rng.normal(size=y.shape)
    backward(dy.copy())

    emb = torch.nn.Embedding(12, 4, dtype=torch.float64)
    conv = torch.nn.Conv1d(4, 5, window, dtype=torch.float64)
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(layer.params["E"]))
        conv.weight.copy_(torch.from_numpy(layer.params["W"].transpose(2, 1, 0).copy()))   # (F, dc, k)
        conv.bias.copy_(torch.from_numpy(layer.params["b"]))
    h = window // 2
    outs = []
    for row in chars:
        word = [0] * h + [int(c) for c in row if c != 0] + [0] * h
        z = conv(emb(torch.tensor(word)).T[None])[0]          # (F, L)
        outs.append(z.max(dim=1).values)
    ty = torch.stack(outs)
    (ty * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["E"], emb.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["W"], conv.weight.grad.numpy().transpose(2, 1, 0), atol=1e-12)
    np.testing.assert_allclose(layer.grads["b"], conv.bias.grad.numpy(), atol=1e-12)


# ---------------------------------------------------------------- end to end: unseen words

def _names_task(n, seed):
    """Tag capitalised words B-NAME; every word is a fresh random string, so the dev words are all unseen."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    out = []
    for _ in range(n):
        toks, tags = [], []
        for _ in range(rng.integers(3, 9)):
            word = "".join(rng.choice(letters, size=rng.integers(3, 8)))
            name = rng.random() < 0.3
            toks.append(word.capitalize() if name else word)
            tags.append("B-NAME" if name else "O")
        out.append({"tokens": toks, "tags": tags})
    return out


def test_char_features_tag_words_never_seen_in_training(tmp_path):
    import json

    from seqtool.stages.train import run_train

    paths = []
    for name, recs in (("tr", _names_task(300, 0)), ("dv", _names_task(80, 1))):
        paths.append(str(tmp_path / f"{name}.jsonl"))
        with open(paths[-1], "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in recs)
    common = dict(dev=paths[1], progress=False, threads=2, epochs=10, hidden=16, embed=8, dropout=0.0, lr=0.01,
                  min_count=2, word_dropout=0.0, crf=False, shape_dim=0, lowercase=False)
    plain = run_train(paths[0], output=str(tmp_path / "plain"), char=False, **common)[0]
    chars = run_train(paths[0], output=str(tmp_path / "char"), char=True, char_dim=8, char_filters=8, **common)[0]
    assert plain["dev"]["f1"] < 0.5, plain      # every dev word reads as <UNK>: nothing tells names apart
    assert chars["dev"]["f1"] > 0.95, chars
