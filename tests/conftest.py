import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def shared_data_dir() -> Path | None:
    """The real dataset copies: $NVMXBAR_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("NVMXBAR_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data", Path("/work/shared/data")]:
        if cand.is_dir():
            return cand.resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data not found: set NVMXBAR_DATA_DIR to a folder with uci_har/ and cifar10/")
    return d


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def small_net(arch: dict, quant: dict | None, seed: int = 0, n: int = 256):
    """A tiny network in float64 on random inputs (9 x 32 windows); a quantized one has its shared
    full-scales calibrated by one training-mode forward. Returns (net in eval mode, inputs)."""
    import torch

    from nvmxbar.models import build

    torch.manual_seed(seed)
    net = build(arch, quant).double()
    x = torch.randn(n, 9, 32, dtype=torch.float64)
    if quant:
        net.train()
        net(x)  # calibrate the shared full-scales
    return net.eval(), x
