"""Rule report: nvmxbar.stages.report (REPORT.md and the report's MLflow runs)."""
from nvmxbar.logs import job_log
from nvmxbar.stages import report

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    benchmarks = {name.removeprefix("bench_"): list(paths) for name, paths in sm.input.items()
                  if name.startswith("bench_")}
    report.run(collected=sm.input.collected, tables=sm.input.tables, table_files=sm.input.table_files,
               sensitivity=sm.input.sensitivity, figures=sm.input.figures, benchmarks=benchmarks, cfg=sm.params.cfg,
               report_md=sm.output.report, profile=sm.params.profile,
               experiments=sm.params.experiments or None, notes=sm.params.notes)
