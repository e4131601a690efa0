"""The physics core: quantizer, networks, crossbar layout and mapping schemes, simulator, noise models and cost
model. It imports no MLflow, no Snakemake, no Lightning and no file layout: plain functions on tensors, arrays and
typed settings (nvmxbar.settings)."""
