"""Records in and out: readers and formats, JSON Lines, the tokenizer, vocabularies, batching and the
compact arrays a model trains on, and the scores (conlleval's entity P/R/F1 and others)."""
