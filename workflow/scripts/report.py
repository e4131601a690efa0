"""Rule report: nvmxbar.stages.report (the outputs are built by nvmxbar.report)."""
from pathlib import Path

from nvmxbar.logs import job_log
from nvmxbar.stages import report

sm = snakemake  # noqa: F821 (injected by Snakemake)
with job_log(sm.log[0]):
    written = report.run(results_dir=sm.params.results_dir, datasets=sm.params.datasets, variants=sm.params.variants,
                         bits=sm.params.bits, seeds=sm.params.seeds, cfg=sm.params.cfg,
                         tables_dir=sm.params.tables_dir, figures_dir=sm.params.figures_dir,
                         report_md=sm.output.report, profile=sm.params.profile,
                         experiments=sm.params.experiments or None, cost_cfg=sm.params.cost_cfg,
                         notes=sm.params.notes)
    made = {str(Path(p)) for paths in written.values() for p in paths}
    missing = [str(p) for p in sm.output if str(Path(p)) not in made]
    if missing:  # the rule's outputs and the stage's file names must agree
        raise RuntimeError(f"rule report declares outputs that nvmxbar.report did not write: {missing}")
