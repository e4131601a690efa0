# nvmxbar: train small DNNs for analog NVM crossbars, map them, measure accuracy, area and energy.
# Run: snakemake --cores 8 [--config profile=smoke data_dir=/path/to/data]. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare_data.smk"
include: "workflow/rules/nas_unipolar.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/map_crossbar.smk"
include: "workflow/rules/evaluate_noise.smk"
include: "workflow/rules/estimate_cost.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
