"""``history.tsv``: a model's per-epoch training history as a table, for spreadsheets and pandas.

Written by modelio.save_model inside the model directory's atomic save, from the
``history`` of metrics.json (one row per epoch; the dev metrics get a ``dev_`` prefix).
``pandas.read_csv("model/history.tsv", sep="\\t")`` reads it back.
"""
import math

# The EpochRecord fields in the order a reader expects them; dev metrics follow.
COLUMNS = ("epoch", "loss", "lr", "tokens_per_s", "grad_norm", "max_grad_norm", "clipped_steps",
           "skipped_steps", "seconds")


def history_tsv(history: list[dict]) -> bytes:
    """The TSV text of ``history`` (metrics.json's list of epoch dicts); a header line only when empty."""
    dev_keys = sorted({k for rec in history for k, v in (rec.get("dev") or {}).items() if _is_number(v)})
    header = [*COLUMNS, *(f"dev_{k}" for k in dev_keys)]
    rows = ["\t".join(header)]
    for rec in history:
        dev = rec.get("dev") or {}
        rows.append("\t".join([*(_cell(rec.get(c)) for c in COLUMNS), *(_cell(dev.get(k)) for k in dev_keys)]))
    return ("\n".join(rows) + "\n").encode("utf-8")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value) -> str:
    """A number as text (repr keeps every digit); empty when missing or not finite (NaN reads back as NaN)."""
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value)
