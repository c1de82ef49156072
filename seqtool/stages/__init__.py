"""The stages behind the commands, one module per verb: ``run_<verb>(input, out, **options) -> Report``.

The CLI, the YAML runner and the Python API call these same functions; base.py holds
what they share (Report, the progress bar, warnings).
"""
