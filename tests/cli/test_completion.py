"""Shell completion as the README documents it: click's, through the real entry point (python -m seqtool)."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def complete(**env) -> str:
    proc = subprocess.run([sys.executable, "-m", "seqtool"], capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bash_source_prints_the_completion_script():
    assert "complete -o nosort -F _seqtool_completion seqtool" in complete(_SEQTOOL_COMPLETE="bash_source")


def test_zsh_source_prints_the_completion_script():
    assert complete(_SEQTOOL_COMPLETE="zsh_source").startswith("#compdef seqtool")


def bash(words: str) -> list[str]:
    return complete(_SEQTOOL_COMPLETE="bash_complete", COMP_WORDS=words,
                    COMP_CWORD=str(len(words.split(" ")) - 1)).splitlines()


def test_commands_options_and_choices_complete():
    assert bash("seqtool ins") == ["plain,inspect"]
    assert bash("seqtool tag --output-format ") == ["plain,jsonl", "plain,conll", "plain,inline", "plain,fasttext"]


def test_a_model_completes_as_a_directory_and_an_input_as_a_file():
    assert bash("seqtool tag -m ") == ["dir,"]
    assert bash("seqtool tag -m m sam") == ["file,sam"]
    assert bash("seqtool run pipe") == ["file,pipe"]
