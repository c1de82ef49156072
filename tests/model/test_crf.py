"""The CRF output layer (seqtool/crf.py): loss gradient, BIO constraints, decoding."""
import numpy as np

from seqtool.model.crf import CRF, bio_allowed, find_crf
from seqtool.model.gradcheck import numerical_gradient, relative_error
from seqtool.model.layers import Dense, Serial
from seqtool.data.metrics import spans
from seqtool.data.packing import make_packing

TAGS = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]


def _setup(dtype=np.float64, lengths=(5, 2, 4)):
    rng = np.random.default_rng(0)
    p = make_packing(list(lengths))
    crf = CRF(len(TAGS), dtype=dtype)
    for name in crf.params:
        crf.params[name][...] = rng.normal(size=crf.params[name].shape)
    em = rng.normal(size=(p.n_rows, len(TAGS))).astype(dtype)
    tags = rng.integers(0, len(TAGS), size=p.n_rows)
    return p, crf, em, tags


def test_loss_gradient_float64():
    p, crf, em, tags = _setup()
    loss, dem = crf.loss(em, tags, p)

    def f():
        return crf.loss(em, tags, p)[0]

    analytic = {k: g.copy() for k, g in crf.grads.items()}
    assert relative_error(dem, numerical_gradient(f, em)) < 1e-6
    for name in crf.params:
        assert relative_error(analytic[name], numerical_gradient(f, crf.params[name])) < 1e-6, name
    assert loss > 0


def test_forward_is_the_identity_and_find_crf():
    crf = CRF(3)
    model = Serial(Dense(4, 3), crf)
    x = np.ones((2, 3), dtype=np.float32)
    y, back = crf(x, None)
    assert y is x and back(x) is x
    assert find_crf(model) is crf
    assert find_crf(Serial(Dense(4, 3))) is None


def test_bio_allowed():
    allowed, allowed_start = bio_allowed(TAGS)
    assert allowed_start.tolist() == [True, True, True, False, False]
    assert allowed[TAGS.index("B-LOC"), TAGS.index("I-LOC")]
    assert allowed[TAGS.index("I-LOC"), TAGS.index("I-LOC")]
    assert not allowed[TAGS.index("O"), TAGS.index("I-LOC")]
    assert not allowed[TAGS.index("B-PER"), TAGS.index("I-LOC")]
    assert allowed[:, TAGS.index("O")].all()
    assert bio_allowed(["NOUN", "VERB"]) is None
    assert bio_allowed(["O", "B-X", "I-"]) is None


def test_constrained_decoding_is_valid_bio_and_marginals_sum_to_one():
    p, crf, em, tags = _setup(np.float32, lengths=(12, 9, 7, 7, 1))
    crf.params["trans"][...] = 0.0
    crf.params["start"][...] = 0.0
    em[:, 3:] += 3.0                      # I- tags score highest everywhere
    crf.allowed = bio_allowed(TAGS)
    best = crf.viterbi(em, p)
    for b in range(p.batch):
        seq = [TAGS[t] for t in best[p.rows[b, :p.lengths[b]]]]
        assert not seq[0].startswith("I-")
        for a, c in zip(seq, seq[1:]):
            assert not c.startswith("I-") or a[2:] == c[2:], seq
        assert spans(seq) is not None
    marg = crf.marginals(em, p)
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, rtol=1e-6)
    unconstrained = crf.viterbi(em, p, constrained=False)
    assert (unconstrained >= 3).all()


# ---------------------------------------------------------------- end to end: train --crf, tag, old models

def _spans_task(n, seed):
    """Entities are 'the' + 1..3 names ('x...'), typed by the word before 'the': the span's tags must agree."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        toks, tags = [], []
        while len(toks) < 10:
            if rng.random() < 0.3:
                kind = rng.choice(["to", "by"])
                names = [f"x{rng.integers(0, 30)}" for _ in range(rng.integers(1, 4))]
                typ = "LOC" if kind == "to" else "PER"
                toks += [kind] + names
                tags += ["O", f"B-{typ}"] + [f"I-{typ}"] * (len(names) - 1)
            else:
                toks.append(rng.choice(["a", "b", "c", "d"]))
                tags.append("O")
        out.append({"tokens": toks, "tags": tags})
    return out


def _write(path, records):
    import json

    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return str(path)


def test_train_crf_then_tag_gives_valid_bio_and_marginal_scores(tmp_path):
    import io
    import json

    from seqtool.predict import LoadedModel
    from seqtool.stages.tag import run_tag
    from seqtool.stages.train import run_train

    tr, dv = _write(tmp_path / "tr.jsonl", _spans_task(300, 0)), _write(tmp_path / "dv.jsonl", _spans_task(80, 1))
    out = str(tmp_path / "m")
    summary, _ = run_train(tr, output=out, dev=dv, progress=False, threads=2, crf=True, epochs=8, hidden=24,
                           embed=16, dropout=0.0, word_dropout=0.0, lr=0.01)
    assert summary["dev"]["f1"] > 0.95, summary
    loaded = LoadedModel(out)
    assert loaded.config["crf"] is True and loaded.model.layers[-1].allowed is not None
    buf = io.BytesIO()
    run_tag(out, dv, buf)
    records = [json.loads(line) for line in buf.getvalue().decode().splitlines()]
    for rec in records:
        for a, b in zip(["O"] + rec["tags"], rec["tags"]):
            assert not b.startswith("I-") or a[2:] == b[2:], rec["tags"]
        for ent in rec["entities"]:
            assert 0.0 < ent["score"] <= 1.0
    assert np.mean([e["score"] for r in records for e in r["entities"]]) > 0.8


def test_a_model_saved_before_crf_and_char_options_still_loads(tmp_path):
    import io
    import json

    from seqtool.predict import LoadedModel
    from seqtool.stages.tag import run_tag
    from seqtool.stages.train import run_train

    tr = _write(tmp_path / "tr.jsonl", _spans_task(40, 0))
    out = str(tmp_path / "old")
    run_train(tr, output=out, progress=False, threads=1, epochs=1, hidden=8, embed=8, crf=False, char=False,
              shape_dim=0)   # what a model of that time was
    cfg_path = tmp_path / "old" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("crf", "bio_constraints", "char", "char_dim", "char_filters", "char_window", "shape_dim",
                "embeddings", "freeze_embeddings", "n_chars"):
        cfg.pop(key, None)
    cfg_path.write_text(json.dumps(cfg))
    loaded = LoadedModel(out)
    assert find_crf(loaded.model) is None
    buf = io.BytesIO()
    run_tag(out, tr, buf)
    assert len(buf.getvalue().decode().splitlines()) == 40


def test_cli_train_with_crf_char_and_shape(tmp_path, sample_data):
    from click.testing import CliRunner

    from seqtool.cli import cli

    out = str(tmp_path / "m")
    result = CliRunner().invoke(cli, ["-q", "--threads", "1", "train", "--train", str(sample_data / "ner.jsonl"),
                                      "--dev", str(sample_data / "ner_dev.jsonl"), "-o", out, "--crf", "--char",
                                      "--shape-dim", "4", "--char-filters", "8", "--char-dim", "8",
                                      "--no-bio-constraints", "--epochs", "1", "--hidden", "8", "--embed", "8"])
    assert result.exit_code == 0, result.output
    cfg = modelio_config(out)
    assert (cfg["crf"], cfg["char"], cfg["shape_dim"], cfg["bio_constraints"]) == (True, True, 4, False)
    bad = CliRunner().invoke(cli, ["train", "--task", "classifier", "--train", str(sample_data / "tweets.jsonl"),
                                   "-o", str(tmp_path / "c"), "--crf"])
    assert bad.exit_code == 2
    assert bad.stderr == "seqtool train: --crf does not apply to --task classifier: it is for tagger\n"


def modelio_config(path):
    from seqtool.model import modelio

    return modelio.load_model(path)[0]
