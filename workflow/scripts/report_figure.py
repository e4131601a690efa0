"""Rule report_figure: nvmxbar.stages.report_figure (the figure's code: nvmxbar.report.figure_<kind>)."""
from nvmxbar.logs import job_log
from nvmxbar.stages import report_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    report_figure.run(sm.wildcards.kind, sm.input.collected, sm.output.png, datasets=sm.params.datasets,
                      cfg=sm.params.cfg, tables=sm.input.get("tables"), sensitivity=sm.input.get("sensitivity"))
