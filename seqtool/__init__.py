"""seqtool: sequence models for text on the CPU, as Unix-style JSONL stages."""
__version__ = "0.1.0"
