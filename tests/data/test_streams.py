"""Compressed inputs and encodings: every format read through .gz/.bz2/.xz/.zip, streaming, bad archives."""
import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqtool.cli import cli
from seqtool.data.readers import Reading, Source
from seqtool.errors import DataError, UsageError

REPO = Path(__file__).resolve().parents[2]
JSONL = b'{"text": "caf\xc3\xa9 ok", "label": "pos"}\n{"text": "bad", "label": "neg"}\n'
RECORDS = [(1, {"text": "caf\u00e9 ok", "label": "pos"}), (2, {"text": "bad", "label": "neg"})]


def write(path: Path, data: bytes) -> Path:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(path.stem, data)
    else:
        opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[path.suffix]
        with opener(path, "wb") as f:
            f.write(data)
    return path


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_every_compression_reads_as_the_plain_file(tmp_path, suffix):
    path = write(tmp_path / f"train.jsonl{suffix}", JSONL)
    assert list(Source(str(path))) == RECORDS


def test_the_format_is_guessed_under_the_compression_suffix(tmp_path):
    path = write(tmp_path / "a.conll.gz", b"Ann B-PER\nleft O\n")
    assert list(Source(str(path))) == [(1, {"tokens": ["Ann", "left"], "tags": ["B-PER", "O"]})]
    csv_zip = write(tmp_path / "a.csv.zip", b"text,label\nhi,pos\n")
    assert list(Source(str(csv_zip))) == [(2, {"text": "hi", "label": "pos"})]


def test_a_zip_of_two_files_is_a_usage_error(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.jsonl", JSONL)
        z.writestr("b.jsonl", JSONL)
    result = CliRunner().invoke(cli, ["convert", str(path), "--to", "jsonl"])
    assert result.exit_code == 2
    assert result.stderr == (f"seqtool convert: {path}: a zip input holds one file; this one holds 2 "
                             "(a.jsonl, b.jsonl): unzip it and give the file\n")


def test_a_corrupt_gzip_is_a_one_line_error(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(gzip.compress(JSONL * 50)[:60])
    with pytest.raises(DataError, match=f"^{path}: cannot decompress: "):
        list(Source(str(path)))


def test_gzip_on_stdin_is_recognised_by_its_magic_bytes():
    proc = subprocess.run([sys.executable, "-m", "seqtool", "convert", "--to", "jsonl"], input=gzip.compress(JSONL),
                          capture_output=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == [r for _, r in RECORDS]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16"])
def test_encodings(tmp_path, encoding):
    path = tmp_path / "a.jsonl"
    path.write_bytes(JSONL.decode().encode(encoding))
    assert list(Source(str(path), Reading(encoding=encoding))) == RECORDS


def test_a_utf16_byte_order_mark_is_recognised_without_encoding(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("caf\u00e9\nna\u00efve\n".encode("utf-16"))
    assert list(Source(str(path))) == [(1, {"text": "caf\u00e9"}), (2, {"text": "na\u00efve"})]


def test_a_wrong_encoding_names_the_line_and_byte(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"ok\nfine\n\x81 is not cp1252\n")
    with pytest.raises(DataError) as e:
        list(Source(str(path), Reading(encoding="cp1252")))
    assert str(e.value) == f"{path}:3: not cp1252 (byte 0x81 at column 1): check --encoding"
    with pytest.raises(UsageError, match="unknown --encoding 'klingon'"):
        Source(str(path), Reading(encoding="klingon"))


def test_a_large_gzip_streams_in_flat_memory(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    line = json.dumps({"text": "a fairly ordinary sentence of some words " * 4, "label": "x"}).encode() + b"\n"
    with gzip.open(path, "wb", compresslevel=1) as f:
        for _ in range(100):
            f.write(line * 1000)                    # 100k records, ~18 MB uncompressed
    size = len(line) * 100_000
    tracemalloc.start()
    count = sum(1 for _ in Source(str(path)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 100_000
    assert peak < size / 20, f"peak {peak} bytes for {size} bytes of input"


def test_dask_refuses_what_its_byte_ranges_cannot_cut(tmp_path):
    from seqtool.distributed.parts import dask_format, plan

    assert dask_format("conll") == "conll" and dask_format(Reading(format="text")) == "text"
    with pytest.raises(UsageError, match=r"^--dask reads jsonl, conll, text, fasttext files in UTF-8: convert"):
        dask_format(Reading(format="csv"))
    with pytest.raises(UsageError, match="in UTF-8"):
        dask_format(Reading(encoding="cp1252"))
    path = write(tmp_path / "a.jsonl.gz", JSONL)
    with pytest.raises(UsageError, match=r"a.jsonl.gz: --dask reads uncompressed"):
        plan([str(path)], None, 1000)
