"""The paper's tables and figures, and REPORT.md, from the files the earlier rules wrote. Plain functions over pandas
DataFrames, no MLflow; each report rule runs one stage (:mod:`nvmxbar.stages`), and each stage reads only the
files its rule declares:

* rule ``report_collect``: :mod:`.collect` and :mod:`.collect_nas` read every declared input, every seed's, into
  tidy DataFrames (a missing or unreadable file stops with an error naming it and the rule that writes it);
* rule ``report_tables``: :mod:`.accuracy` (accuracy tables over the seeds, differences between deployments),
  :mod:`.tables` (cost, attribution), :mod:`.tables_nas` (the architecture search), written by :mod:`.formatting`
  as CSV, Markdown and LaTeX;
* rule ``report_sensitivity``: :mod:`.sensitivity` (the savings repriced by :func:`nvmxbar.core.cost.estimate`
  with one assumption moved) and :mod:`.sensitivity_text`;
* rule ``report_figure`` (one job per kind): :mod:`.figures` (shared style) and one module ``figure_<kind>`` per
  figure kind, the job's declared code input;
* rule ``report``: :mod:`.render`, :mod:`.render_nas`, :mod:`.verdicts` (one verdict per claim of the paper) and
  :mod:`.timing` (per-rule sums of the declared benchmark files): REPORT.md.

:mod:`.paper` holds the paper's published figures, the only numbers in the outputs not read from results/;
:mod:`.seeds` the statistics over seeds.
"""
