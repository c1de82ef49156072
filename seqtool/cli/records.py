"""Commands that read and write records: vocab, pad, convert, inspect."""
import click

from seqtool.cli.app import cli, finish, print_json, stdout
from seqtool.cli.options import common_options, input_argument, read_options, skip_invalid_option
from seqtool.data.formats import WRITE_FORMATS


@cli.command()
@common_options
@input_argument
@click.option("-o", "--output", metavar="FILE", help="Build a vocabulary and save it to FILE (vocab.json).")
@click.option("--vocab", "vocab_file", metavar="FILE", help="Apply the vocabulary saved in FILE instead (streams).")
@read_options
@click.option("--token-column", type=int, default=1, show_default=True,
              help="conll: column of the tokens, from 1 (negative: from the end).")
@click.option("--tag-column", type=int, default=-1, show_default=True,
              help="conll: column of the tags (-1 = last; 0 = the file has no tags).")
@click.option("--min-count", type=click.IntRange(1), default=1, show_default=True,
              help="Keep words seen at least N times; the rest read as <UNK>.")
@click.option("--max-size", type=click.IntRange(1), help="Keep at most N words (besides <PAD> and <UNK>).")
@click.option("--lowercase", is_flag=True, help="Look words up in lower case (tokens are emitted as written).")
@click.option("--char-min-count", type=click.IntRange(1), default=1, show_default=True,
              help="Keep characters seen at least N times in the character vocabulary.")
@skip_invalid_option
@click.pass_obj
def vocab(settings, input, output, vocab_file, fmt, token_column, tag_column, min_count, max_size,
          lowercase, char_min_count, skip_invalid):
    """Add integer ids to records, building a vocabulary (-o) or applying one (--vocab).

    INPUT is a path or - (stdin, the default): JSONL records, a CoNLL column
    file or plain text, one example per line. Every record comes out with ids
    (and tag_ids, label_id, q1_ids, q2_ids when it has tags, a label or a
    question pair); text, q1 and q2 also come out tokenized as tokens,
    q1_tokens and q2_tokens. Every other key passes through.

    Building (-o) reads the whole input before writing: ids are <PAD>=0,
    <UNK>=1, then the words by count. Applying (--vocab) streams; an unknown
    word reads as <UNK>, an unknown tag or label is an error.

    \b
    seqtool vocab -o vocab.json train.jsonl > train.ids.jsonl
    seqtool vocab --vocab vocab.json dev.conll > dev.ids.jsonl
    """
    from seqtool.stages.vocab import run_vocab

    finish(settings, run_vocab(
        input, stdout(), output=output, vocab=vocab_file, format=fmt, token_column=token_column,
        tag_column=tag_column, min_count=min_count, max_size=max_size, char_min_count=char_min_count,
        lowercase=lowercase, skip_invalid=skip_invalid, progress=False if settings.quiet else None))


@cli.command()
@common_options
@input_argument
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True, help="Records per batch.")
@click.option("--bucket", type=click.IntRange(0), default=0, show_default=True,
              help="Sort records by length within windows of N batches, to pad less (0: keep the order).")
@click.option("--length", type=click.IntRange(1),
              help="Pad (and truncate) every sequence to L tokens instead of the batch's longest.")
@skip_invalid_option
@click.pass_obj
def pad(settings, input, batch_size, bucket, length, skip_invalid):
    """Group records into batches and pad their id sequences with 0.

    INPUT is the JSONL output of seqtool vocab (a path or -, the default). Each
    record comes out with ids and tag_ids padded to the longest in its batch
    (or to --length), a mask (1 = token, 0 = padding), its true length and its
    batch number; pairs get q1_ids and q2_ids padded, with q1_mask, q1_length,
    q2_mask and q2_length. Every other key passes through. Streams: memory
    holds one batch (or one --bucket window).

    \b
    seqtool vocab -o vocab.json train.jsonl | seqtool pad --batch-size 32 --bucket 20
    """
    from seqtool.stages.pad import run_pad

    finish(settings, run_pad(input, stdout(), batch_size=batch_size, bucket=bucket, length=length,
                              skip_invalid=skip_invalid, progress=False if settings.quiet else None))


@cli.command()
@common_options
@input_argument
@click.option("--to", type=click.Choice(WRITE_FORMATS), required=True, help="The format to write.")
@read_options
@click.option("--token-column", type=int, default=1, show_default=True,
              help="conll input: column of the tokens, from 1 (negative: from the end).")
@click.option("--tag-column", type=int, default=-1, show_default=True,
              help="conll input: column of the tags (-1 = last; 0 = the file has no tags).")
@skip_invalid_option
@click.pass_obj
def convert(settings, input, to, fmt, token_column, tag_column, skip_invalid):
    """Write records in another format: any format seqtool reads to jsonl, conll, fasttext, csv or tsv.

    INPUT is a path or - (stdin, the default), read as every stage reads it
    (--format, --encoding, --columns; .gz/.bz2/.xz/.zip decompressed). Streams.

    \b
    seqtool convert ner_dataset.csv.zip --encoding cp1252 --to jsonl > gmb.jsonl
    seqtool convert train.jsonl --to conll > train.conll
    """
    from seqtool.stages.convert import run_convert

    finish(settings, run_convert(input, stdout(), to=to, format=fmt, token_column=token_column,
                                  tag_column=tag_column, skip_invalid=skip_invalid))


@cli.command()
@common_options
@input_argument
@click.option("-m", "--model", metavar="DIR",
              help="Measure out-of-vocabulary words and unknown tags against this model.")
@click.option("--vocab", "vocab_file", metavar="FILE", help="... or against this saved vocabulary (seqtool vocab -o).")
@click.option("--dev", metavar="FILE", help="A dev file: its statistics, OOV rate and tags/labels that INPUT lacks.")
@read_options
@skip_invalid_option
@click.pass_obj
def inspect(settings, input, model, vocab_file, dev, fmt, skip_invalid):
    """What a data set holds: counts, lengths, tags, labels, out-of-vocabulary rate.

    INPUT (the training data) and --dev: records, tokens, sentence length
    percentiles, tag, entity and label counts. The dev file's out-of-vocabulary
    rate is measured against --model or --vocab when given, else against INPUT's
    words; tags or labels in dev that INPUT never has are a warning. JSON on
    stdout, the summary on stderr.

    \b
    seqtool inspect train.jsonl --dev dev.jsonl
    seqtool inspect -m models/ner new.jsonl
    """
    from seqtool.stages.inspect import run_inspect

    result, report = run_inspect(input, model=model, vocab=vocab_file, dev=dev, format=fmt,
                                 skip_invalid=skip_invalid, progress=False if settings.quiet else None)
    print_json(result)
    finish(settings, report)
