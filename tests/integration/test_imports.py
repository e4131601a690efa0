"""The package's import has no side effects: checked in a fresh interpreter that imports the whole stack (torch,
Lightning, MLflow, Optuna, pandas, seaborn: seconds), so it lives in this tier, not the unit tier."""


def test_importing_the_package_changes_no_global_state():
    """Nothing global changes on import: no logging handlers or levels, no warning filters, no plot backend. The
    libraries are imported first: their own import-time settings are theirs, not the package's."""
    import subprocess
    import sys

    code = (
        "import logging, warnings, matplotlib\n"
        "import torch, lightning, mlflow, optuna, pandas, seaborn, numpy, yaml, jsonschema, tqdm\n"
        "from lightning.pytorch.loggers import MLFlowLogger\n"
        "state = lambda: (list(logging.getLogger().handlers), logging.getLogger().level,\n"
        "    logging.getLogger('lightning.pytorch').level, list(warnings.filters), matplotlib.get_backend())\n"
        "s0 = state()\n"
        "import nvmxbar.stages.train, nvmxbar.stages.report, nvmxbar.stages.nas_unipolar_search\n"
        "import nvmxbar.stages.evaluate_noise, nvmxbar.stages.estimate_cost, nvmxbar.stages.map_crossbar\n"
        "assert state() == s0, (s0, state())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
