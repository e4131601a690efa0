"""The unipolar architecture search (Optuna): space, storage, one trial's objective, selection, figure."""
