"""Tags of tagging corpora: what a tag looks like, and IOB1 made IOB2 (BIO), as every reader gives them."""
import re

# A tag of a tagging corpus: O, B-X / I-X (and the other IOB schemes, either side), POS and chunk
# tags (NN, VBZ, PRP$, NP), punctuation tags (, . '' ``), -X- and numbers. Quotes and braces never are.
_TAG = re.compile(r'O|[BIESLU]-[^\s"{}\[\]]+|[^\s"{}\[\]]+-[BIESLU]|[A-Z][A-Z0-9$]*(?:[-_][A-Z0-9]+)*'
                  r'|[^\w\s"{}\[\]]{1,3}|-[A-Z]+-|\d+')


def tag_like(value: str) -> bool:
    """Whether ``value`` could be a tag in a tag column."""
    return _TAG.fullmatch(value) is not None


def iob1_to_bio(tags: list[str]) -> list[str]:
    """IOB1 tags -> IOB2: an ``I-X`` that does not continue an X entity becomes ``B-X``.

    IOB2 input comes back unchanged; tags without a B-/I- prefix are left alone.
    """
    out = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            out.append("B-" + tag[2:])
        else:
            out.append(tag)
        prev = tag
    return out
