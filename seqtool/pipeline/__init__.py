"""The YAML pipeline runner behind ``seqtool run``.

    yamlfile.py   safe YAML with line numbers, ${vars.x} ${env.X:-default}
    spec.py       each step checked against the CLI's own options
    links.py      {from: STEP} references, where each stream goes, what must exist
    state.py      incremental state, the lock, the run log
    steps.py      running one step (the stage functions), promote
    run.py        the run itself
"""
