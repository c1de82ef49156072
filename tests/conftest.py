"""Shared fixtures and markers for the whole test suite.

- ``@pytest.mark.requires_torch``: the test is skipped when PyTorch is not installed
  (the ``parity`` extra); the ``torch`` fixture imports it or skips.
- ``shared_data``: the folder of real corpora (``shared/data`` beside the repository),
  or a clean skip when it is absent.
- ``sample_data``: the repository's own ``sample_data`` folder.
"""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_torch: skipped when PyTorch is not installed")


def pytest_collection_modifyitems(config, items):
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason="PyTorch is not installed (pip install -e '.[parity]')")
    for item in items:
        if "requires_torch" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def torch():
    """The torch module, or a skip when it is not installed."""
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``shared/data`` beside the repository (real corpora); skips when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return REPO / "sample_data"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, sample_data) -> dict:
    """Small models trained once per session on sample_data, in seconds: {"ner", "clf", "siamese"} -> directory."""
    import seqtool

    d = tmp_path_factory.mktemp("tiny-models")
    tiny = dict(epochs=2, hidden=16, embed=8, progress=False, threads=1)
    seqtool.train(str(sample_data / "ner.jsonl"), output=str(d / "ner"), task="tagger",
                  dev=str(sample_data / "ner_dev.jsonl"), **tiny)
    seqtool.train(str(sample_data / "tweets.jsonl"), output=str(d / "clf"), task="classifier", **tiny)
    seqtool.train(str(sample_data / "pairs.jsonl"), output=str(d / "siamese"), task="siamese",
                  dev=str(sample_data / "pairs.jsonl"), **tiny)
    return {k: str(d / k) for k in ("ner", "clf", "siamese")}
