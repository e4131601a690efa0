"""Thin entry point of rule report: all logic is in nvmxbar.report."""
from pathlib import Path

from nvmxbar.report import report_stage
from nvmxbar.tracking import log_to

sm = snakemake  # noqa: F821 (injected by Snakemake)
with log_to(sm.log[0]):
    written = report_stage(sm.params.results_dir, sm.params.datasets, sm.params.variants, sm.params.bits,
                           sm.params.cfg, tables_dir=sm.params.tables_dir, figures_dir=sm.params.figures_dir,
                           report_md=sm.output.report, profile=sm.params.profile,
                           experiments=sm.params.experiments or None)
    made = {str(Path(p)) for paths in written.values() for p in paths}
    missing = [str(p) for p in sm.output if str(Path(p)) not in made]
    if missing:  # the rule's outputs and the stage's file names must agree
        raise RuntimeError(f"rule report declares outputs that nvmxbar.report did not write: {missing}")
