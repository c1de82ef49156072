"""``seqtool report``: a model's training and results, and a pipeline's runs, as one offline HTML page.

    charts.py     matplotlib (the ``report`` extra, imported only here) -> inline SVG, or PNG for --png
    html.py       the page: inline CSS (light and dark), tables, figures with their data attached
    training.py   the training section, from metrics.json's per-epoch history
    results.py    one section per --eval file, scored by the eval stage (tagger, classifier, Siamese)
    errors.py     a tagger's error kinds and the sample sentences with their entities highlighted
    modelinfo.py  the model section: task, architecture, sizes, tag/label sets, fingerprint, versions
    runs.py       a pipeline's run log (``--runs``): metrics per run, promotions, durations, failures

stages/report.py puts them together; nothing outside this folder imports matplotlib.
"""
