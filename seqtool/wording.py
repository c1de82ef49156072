"""Words for counts in the messages every command prints: ``1 record``, ``2 records``, ``0 records``."""


def plural(n: int, noun: str, plural_noun: str | None = None) -> str:
    """``n`` and ``noun``, in the plural unless n is exactly 1 (``plural_noun`` for irregular ones)."""
    return f"{n} {noun if n == 1 else (plural_noun or noun + 's')}"
