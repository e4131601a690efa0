"""Rule report_tables: nvmxbar.stages.report_tables."""
from nvmxbar.logs import job_log
from nvmxbar.stages import report_tables

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    csv = {name: path for name, path in sm.output.items() if name in report_tables.DISPLAY and path}
    report_tables.run(sm.input.collected, sm.params.reference_prog_sigma, csv, sm.output.frames)
