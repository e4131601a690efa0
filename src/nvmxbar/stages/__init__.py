"""One module per Snakemake rule, named like the rule. Each ``run(...)`` does its rule's file I/O and MLflow
tracking on top of the core, data, training, search and report layers; workflow/scripts/<rule>.py calls it."""
