"""Training on top of the core: the LightningModule, one fit with a recipe, and model files."""
