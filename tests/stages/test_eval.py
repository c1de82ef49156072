"""The eval stage: scores of a model equal scores of its tagged output, and errors name the file's line."""
import json

from training_data import context_tagging, train

from seqtool.stages.eval import run_eval
from seqtool.stages.tag import run_tag


def test_tag_then_eval_pred_equals_eval_with_model(tmp_path):
    out, _, dev = train(tmp_path, context_tagging(300, 0), context_tagging(80, 1), task="tagger", epochs=3,
                        hidden=16, embed=8)
    tagged = tmp_path / "tagged.jsonl"
    with open(tagged, "wb") as f:
        run_tag(out, dev, f)
    rows = [json.loads(line) for line in open(tagged)]
    assert len(rows) == 80 and all(len(r["tags"]) == len(r["tokens"]) == len(r["gold_tags"]) for r in rows)
    for r in rows:
        for e in r["entities"]:
            assert r["tags"][e["start"]] in ("B-X", "I-X") and 0 < e["score"] <= 1
    direct, _ = run_eval(dev, model=out)
    piped, _ = run_eval(str(tagged), pred=True)
    assert direct["f1"] == piped["f1"] and direct["accuracy"] == piped["accuracy"]


def test_eval_errors_name_the_line_of_the_file(tmp_path):
    import pytest

    from seqtool.errors import DataError

    out, _, dev = train(tmp_path, context_tagging(100, 0), context_tagging(20, 1), task="tagger", epochs=1,
                        hidden=8, embed=4)
    lines = open(dev).read().splitlines()
    no_gold = json.dumps({"tokens": ["a", "b"]})
    path = tmp_path / "gaps.jsonl"
    path.write_text("\n".join(lines[:3] + ["", ""] + lines[3:6] + [no_gold] + lines[6:]) + "\n")   # line 9
    with pytest.raises(DataError) as e:
        run_eval(str(path), model=out, batch_size=4)
    assert str(e.value) == f'{path}:9: record has no gold "tags" to score against'
    tagged = tmp_path / "tagged.jsonl"
    with open(tagged, "wb") as f:
        run_tag(out, dev, f)
    rows = open(tagged).read().splitlines()
    rows[4] = json.dumps({k: v for k, v in json.loads(rows[4]).items() if k != "gold_tags"})
    tagged.write_text("\n\n".join(rows) + "\n")                        # record 5 is on line 9
    with pytest.raises(DataError) as e:
        run_eval(str(tagged), pred=True)
    assert str(e.value) == f'{tagged}:9: record has no gold "tags" to score against'
