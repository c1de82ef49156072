"""Writes the bundled sample corpora: small, invented, deterministic.

    python sample_data/make_samples.py      # rewrites the files next to this script

Every name, place and organisation below is made up; the sentences come from
templates filled with a fixed seed, so the files are the same on every run.

  ner.conll         400 tagged sentences, CoNLL columns "token shape tag", IOB1 tags,
                    a -DOCSTART- line every 25 sentences (shape: Xx, x, X, d, . ...)
  ner.jsonl         the same 400 sentences as {"id", "tokens", "tags"}, IOB2 (BIO) tags
  ner_dev.jsonl     100 other sentences, same format
  tweets.jsonl      300 tweets {"text", "label": "positive"|"negative"}, with negations
  pairs.jsonl       300 question pairs {"id", "q1", "q2", "is_duplicate": 0|1}
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

FIRST = ["Talia", "Borin", "Mekka", "Ilsa", "Dorran", "Fenna", "Joric", "Sabeth", "Orla", "Vantor",
         "Keelin", "Radomir", "Asha", "Tobin", "Marisol", "Evrard", "Nimra", "Caspian", "Liesl", "Quill"]
LAST = ["Varga", "Holloway", "Tressel", "Okonkwo-Lind", "Marchetti", "Blaskow", "Fairhurst", "Dunleavy",
        "Ostrander", "Kessimov", "Aldana", "Penhallow", "Stroud", "Yarrow", "Bellweather", "Quaintance"]
CITY = ["Quellport", "Dunmere", "Varnholm", "Ashgrove", "Port Tamsin", "Keldra", "Orrinford", "Selvane",
        "New Harrow", "Brackwater", "Istovar", "Lowen Cross"]
COUNTRY = ["Veshtan", "Morravia", "the Calder Isles", "Ostrelia", "Tarkand", "Pellumbia", "Norwen"]
ORG = ["Brightwater Mills", "Norrik Bank", "the Halvard Institute", "Keldra United", "Selvane Rail",
       "Ostrow Motors", "the Tamsin Herald", "Varnholm City", "Corvel Energy", "the Free Morravian Party",
       "Ashgrove Rovers", "Pellum Air"]
TEAM = ["Keldra United", "Varnholm City", "Ashgrove Rovers", "Dunmere Athletic", "Quellport Wanderers",
        "Orrinford Town"]
MISC = ["Veshtani", "Morravian", "Calderian", "Ostrelian", "Tarkandi", "Norwenese"]
EVENT = ["the Amber Cup", "the Selvane Open", "the Quellport Marathon", "the Harvest Games"]

# Slots (each a whole word of the template): {PER} person, {LOC} city or country, {ORG}
# organisation, {TEAM} team (ORG), {NAT} nationality (MISC), {EVENT} event (MISC); untagged:
# {N} a number, {SCORE} like 3-1, {YEAR}, {DAY} a weekday.
NER_TEMPLATES = [
    "{PER} said on {DAY} that {ORG} would open a new office in {LOC} .",
    "{ORG} shares rose {N} percent in {LOC} on {DAY} .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "The {NAT} government asked {ORG} to delay the vote .",
    "{TEAM} beat {TEAM} {SCORE} in {LOC} on {DAY} .",
    "{TEAM} {TEAM} {N} {N}",
    "{LOC} {DAY}",
    "{PER} won {EVENT} for the second time .",
    "Police in {LOC} arrested {N} people after the match .",
    "{PER} told reporters in {LOC} that talks with {PER} had gone well .",
    "{ORG} named {PER} as its new chief executive .",
    "Thousands of {NAT} fans travelled to {LOC} for {EVENT} .",
    "The {NAT} striker {PER} scored twice for {TEAM} .",
    "Flights between {LOC} and {LOC} were cancelled on {DAY} .",
    "{PER} , who was born in {LOC} , joined {ORG} in {YEAR} .",
    "According to {ORG} , exports to {LOC} fell by {N} percent .",
    "Minister {PER} will visit {LOC} next week .",
    "{ORG} said it had agreed to buy {ORG} for {N} million .",
    "Rain stopped play at {EVENT} in {LOC} .",
    "{PER} and {PER} met in {LOC} to discuss the {NAT} border .",
    "A court in {LOC} fined {ORG} on {DAY} .",
    "The {NAT} team arrived in {LOC} late on {DAY} .",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _entity(slot: str, rng: random.Random) -> tuple[list[str], str]:
    """(tokens, type) for one slot of a template."""
    if slot == "PER":
        name = rng.choice(FIRST) + " " + rng.choice(LAST) if rng.random() < 0.7 else rng.choice(LAST)
        return name.split(), "PER"
    if slot == "LOC":
        return rng.choice(CITY + COUNTRY).split(), "LOC"
    if slot in ("ORG", "TEAM"):
        return rng.choice(ORG if slot == "ORG" else TEAM).split(), "ORG"
    if slot == "NAT":
        return [rng.choice(MISC)], "MISC"
    if slot == "EVENT":
        return rng.choice(EVENT).split(), "MISC"
    if slot == "DAY":
        return [rng.choice(DAYS)], "O"
    if slot == "SCORE":
        return [f"{rng.randint(0, 5)}-{rng.randint(0, 5)}"], "O"
    if slot == "YEAR":
        return [str(rng.randint(1960, 2019))], "O"
    return [str(rng.randint(2, 99))], "O"  # N


def _sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    """One sentence from a random template: tokens and IOB2 tags."""
    tokens, tags = [], []
    for part in rng.choice(NER_TEMPLATES).split():
        if not part.startswith("{"):
            tokens.append(part)
            tags.append("O")
            continue
        words, kind = _entity(part[1:-1], rng)
        if words[0] == "the":  # "the Halvard Institute": the article is not part of the name
            tokens.append("The" if not tokens else "the")
            tags.append("O")
            words = words[1:]
        tokens.extend(words)
        tags.extend(["O"] * len(words) if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1))
    return tokens, tags


def _iob1(tags: list[str]) -> list[str]:
    """IOB2 -> IOB1: B- only where an entity directly follows one of the same type."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("B-") and prev[2:] != tag[2:]:
            tag = "I-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def _shape(token: str) -> str:
    if token.isdigit():
        return "d"
    if not token[0].isalnum():
        return "."
    return "Xx" if token[0].isupper() and not token.isupper() else ("X" if token.isupper() else "x")


POSITIVE = ["happy", "great", "awesome", "lovely", "excited", "proud", "thankful", "glad"]
NEGATIVE = ["sad", "awful", "tired", "angry", "annoyed", "sick", "gutted", "upset"]
THINGS = ["the new album", "this weather", "my exam results", "the match", "the concert", "work today",
          "the train", "our trip", "the launch", "this coffee"]
POS_TAGS = ["#blessed", "#FridayFeeling", "#win", ""]
NEG_TAGS = ["#fail", "#mondays", "#ugh", ""]
TWEET_TEMPLATES = [
    "{m} {thing} was {adj} {emo}",
    "so {adj} about {thing} {emo} {tag}",
    "honestly {thing} made me {adj} today {emo}",
    "not {nadj} at all with {thing} {emo}",
    "{thing} ... {adj} {emo} {url}",
    "can't say I'm {nadj} about {thing} {emo}",
    "feeling {adj} {emo} {tag}",
    "{m} thanks for {thing} , not {nadj} {emo}",
]


def _tweet(rng: random.Random, positive: bool) -> str:
    """A tweet; with "not"/"can't" the adjective has the other sentiment ("not sad" is positive)."""
    good, bad = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
    emo = rng.choice([":)", ":-)", ":D", "<3", ""] if positive else [":(", ":-(", ":'(", ""])
    text = rng.choice(TWEET_TEMPLATES).format(
        m="@" + rng.choice(FIRST).lower() + str(rng.randint(1, 99)), thing=rng.choice(THINGS),
        adj=rng.choice(good), nadj=rng.choice(bad), emo=emo,
        tag=rng.choice(POS_TAGS if positive else NEG_TAGS), url=f"https://t.example/{rng.randint(1000, 9999)}")
    return " ".join(text.split())


TOPICS = ["learn to cook rice", "improve my handwriting", "start running", "save money on food",
          "learn the guitar", "fix a slow laptop", "sleep better", "write a cover letter",
          "grow tomatoes indoors", "speak in public", "learn to swim", "train a puppy",
          "make bread at home", "study for exams", "get better at chess", "paint a room"]
DUP_FORMS = ["How do I {t}?", "What is the best way to {t}?", "How can I {t}?", "What should I do to {t}?",
             "Any tips on how to {t}?", "How can one {t} quickly?"]


def _pair(rng: random.Random, duplicate: bool) -> tuple[str, str]:
    """Two questions: the same topic in two forms, or two topics (often in the same form)."""
    topic = rng.choice(TOPICS)
    form1, form2 = rng.sample(DUP_FORMS, 2)
    if duplicate:
        return form1.format(t=topic), form2.format(t=topic)
    other = rng.choice([t for t in TOPICS if t != topic])
    return form1.format(t=topic), (form1 if rng.random() < 0.5 else form2).format(t=other)


def _write_jsonl(name: str, records: list[dict]) -> None:
    with open(os.path.join(HERE, name), "w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(20240611)
    train = [_sentence(rng) for _ in range(400)]
    dev = [_sentence(rng) for _ in range(100)]
    with open(os.path.join(HERE, "ner.conll"), "w", encoding="utf-8", newline="\n") as f:
        for i, (tokens, tags) in enumerate(train):
            if i % 25 == 0:
                f.write("-DOCSTART- -X- O\n\n")
            for token, tag in zip(tokens, _iob1(tags)):
                f.write(f"{token} {_shape(token)} {tag}\n")
            f.write("\n")
    _write_jsonl("ner.jsonl", [{"id": f"ner-{i:04d}", "tokens": t, "tags": g} for i, (t, g) in enumerate(train)])
    _write_jsonl("ner_dev.jsonl", [{"id": f"dev-{i:04d}", "tokens": t, "tags": g} for i, (t, g) in enumerate(dev)])
    tweets = []
    for _ in range(300):
        positive = rng.random() < 0.5
        tweets.append({"text": _tweet(rng, positive), "label": "positive" if positive else "negative"})
    _write_jsonl("tweets.jsonl", tweets)
    pairs = []
    for i in range(300):
        duplicate = rng.random() < 0.5
        q1, q2 = _pair(rng, duplicate)
        pairs.append({"id": 1000 + i, "q1": q1, "q2": q2, "is_duplicate": int(duplicate)})
    _write_jsonl("pairs.jsonl", pairs)


if __name__ == "__main__":
    main()
