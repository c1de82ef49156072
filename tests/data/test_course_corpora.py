"""The three course corpora in their original layouts (made here from shared/data's JSONL) read back as the
JSONL records: GMB as Kaggle's cp1252 ner_dataset.csv in a zip, Quora as BiMPM's TSV, tweets as text files."""
import csv
import io
import json
import zipfile

from seqtool.data.readers import Reading, Source

N = 2000   # records of each corpus: enough for every layout's quirks, quick to read


def head(path, n=N) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def test_gmb_ner_dataset_csv_zip(shared_data, tmp_path):
    records = head(shared_data / "gmb" / "train.jsonl")
    text = io.StringIO()
    rows = csv.writer(text, lineterminator="\r\n")
    rows.writerow(["Sentence #", "Word", "POS", "Tag"])
    for i, r in enumerate(records, 1):
        for j, (token, tag) in enumerate(zip(r["tokens"], r["tags"])):
            rows.writerow([f"Sentence: {i}" if j == 0 else "", token, "NN", tag])
    path = tmp_path / "ner_dataset.csv.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ner_dataset.csv", text.getvalue().encode("cp1252"))
    got = [r for _, r in Source(str(path), Reading(encoding="cp1252"))]
    assert [(r["tokens"], r["tags"]) for r in got] == [(r["tokens"], r["tags"]) for r in records]


def test_quora_bimpm_tsv(shared_data, tmp_path):
    records = head(shared_data / "quora" / "train.jsonl")
    path = tmp_path / "train.tsv"
    path.write_text("".join(f"{r['is_duplicate']}\t{r['q1']}\t{r['q2']}\t{r['id']}\n" for r in records))
    reading = Reading(format="tsv", header=False, quotes=False, columns="is_duplicate=1,q1=2,q2=3,id=4")
    got = [r for _, r in Source(str(path), reading)]
    assert got == [{**r, "id": str(r["id"])} for r in records]


def test_tweets_as_text(shared_data, tmp_path):
    records = head(shared_data / "tweets" / "train.jsonl")
    path = tmp_path / "tweets.txt"
    path.write_text("".join(r["text"] + "\n" for r in records))
    assert [r["text"] for _, r in Source(str(path))] == [r["text"].strip() for r in records]
