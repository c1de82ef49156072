"""The names of the formats seqtool reads and writes: plain data, so that the command line's choices need
not import the readers and writers (``seqtool --help`` stays fast)."""
FORMATS = ("jsonl", "conll", "text", "csv", "tsv", "fasttext")            # what data/readers.py reads
WRITE_FORMATS = ("jsonl", "conll", "fasttext", "csv", "tsv")               # what data/writers.py writes
