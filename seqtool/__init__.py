"""seqtool: sequence models for text on the CPU, as Unix-style JSONL stages and a Python API.

    import seqtool
    model = seqtool.load("models/ner")
    model.tag(["John lives in Paris"])

``load``, ``train`` and ``Model`` live in seqtool/api.py; they are imported on
first use, so that ``import seqtool`` (and ``seqtool --help``) stays fast.
"""
__version__ = "0.1.0"
__all__ = ["Model", "load", "train", "__version__"]


def __getattr__(name: str):
    if name in ("Model", "load", "train"):
        from seqtool import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqtool' has no attribute {name!r}")
