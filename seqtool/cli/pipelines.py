"""``seqtool run``: a YAML pipeline of the commands."""
import sys

import click

from seqtool.cli.app import cli, finish
from seqtool.cli.options import common_options, complete_files


@cli.command(name="run")
@common_options
@click.argument("pipeline", metavar="PIPELINE.yaml", shell_complete=complete_files)
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="Override a variable of the file's vars.")
@click.option("--dry-run", is_flag=True, help="Check the file and print what would run (stdout); run nothing.")
@click.option("--force", is_flag=True, help="Run every selected step, even when unchanged since its last run.")
@click.option("--from", "from_step", metavar="STEP", help="Run STEP and the steps after it only.")
@click.option("--only", multiple=True, metavar="STEP", help="Run STEP only (repeatable).")
@click.option("--wait", is_flag=True, help="If another run of the pipeline holds its lock, wait instead of exit 3.")
@click.pass_obj
def run(settings, pipeline, sets, dry_run, force, from_step, only, wait):
    """Run the steps of a YAML pipeline: vocab, pad, train, tag, eval, dedupe, report, promote.

    Every step is checked before the first runs (an error names the file and
    line, exit 2). A step whose inputs, options and seqtool version are
    unchanged since its last successful run is skipped. A lock keeps two runs
    of one pipeline apart (exit 3); every event goes to a JSONL run log.

    \b
    seqtool run pipelines/quickstart.yaml
    seqtool run pipelines/retrain.yaml --set epochs=5 --dry-run
    """
    from seqtool.pipeline.run import run_pipeline

    finish(settings, run_pipeline(pipeline, sets=sets, dry_run=dry_run, force=force, from_step=from_step,
                                   only=only, wait=wait, quiet=settings.quiet, threads=settings.threads,
                                   out=sys.stdout))
