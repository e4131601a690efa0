"""model.pt: what load_model says of a file that is not a usable model (synthetic tiny networks, no real data)."""

import argparse
import json
import re

import pytest
import torch
from conftest import make_synthetic_npz, map_settings, small_net

from nvmxbar.stages import map_crossbar
from nvmxbar.training.model_io import MODEL_FORMAT, ModelFileError, load_model, save_model

ARCH = {
    "in_shape": [9, 32],
    "num_classes": 3,
    "conv": [8, "M", 16, "M"],
    "kernel_size": 3,
    "hidden": [16],
    "dropout": 0.0,
    "bias": True,
}
QUANT = {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6}


def _doc(net, arch, quant=None, **over):
    doc = {
        "state_dict": {k: v.detach().float() for k, v in net.state_dict().items()},
        "arch": arch,
        "quant": quant,
        "dataset": "har",
        "variant": "uniform" if quant else "baseline",
        "bits": 2 if quant else None,
        "class_names": ["a", "b", "c"],
        "config_hash": "x",
    }
    doc.update(over)
    return doc


def _model(tmp_path, arch=ARCH, quant=None, name="model.pt"):
    net, x = small_net(arch, quant)
    path = tmp_path / name
    save_model(path, _doc(net.float(), arch, quant))
    return path, net.float(), x.float()


@pytest.mark.parametrize("quant", [None, QUANT])
def test_a_model_file_round_trips(tmp_path, quant):
    path, net, x = _model(tmp_path, quant=quant)
    loaded, doc = load_model(path)
    assert doc["format"] == MODEL_FORMAT and doc["arch"] == ARCH
    with torch.no_grad():
        assert torch.equal(loaded(x), net.eval()(x))


def _message(path) -> str:
    with pytest.raises(ModelFileError) as e:
        load_model(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: "), msg  # the file first
    return msg


def test_weights_of_another_architecture_are_named_layer_by_layer(tmp_path):
    """A file whose weights come from a network other than the architecture it records."""
    wide, _ = small_net({**ARCH, "conv": [8, "M", 32, "M"]}, None)
    path = tmp_path / "model.pt"
    save_model(path, _doc(wide, ARCH))
    msg = _message(path)
    assert "its weights do not fit the architecture it records" in msg
    # conv 2 has 16 output channels in ARCH, 32 in the file; the first hidden layer's inputs follow
    assert "layers.1.weight expects (16, 8, 3) got (32, 8, 3)" in msg
    assert "layers.1.bias expects (16,) got (32,)" in msg
    assert "layers.2.weight expects (16, 128) got (16, 256)" in msg
    assert "layers.1 Conv1d" in msg and "layers.3 Linear" in msg


def test_missing_and_unexpected_weights_are_named(tmp_path):
    deeper, _ = small_net({**ARCH, "hidden": [16, 16]}, None)
    path = tmp_path / "model.pt"
    save_model(path, _doc(deeper, ARCH))  # one layer more in the file than in its architecture
    msg = _message(path)
    assert re.search(r"unexpected layers\.4\.weight, layers\.4\.bias", msg), msg
    assert "layers.3.weight expects (3, 16) got (16, 16)" in msg

    net, _ = small_net(ARCH, QUANT)
    doc = _doc(net, ARCH, QUANT)
    del doc["state_dict"]["quant.scales"]
    save_model(path, doc)
    assert "missing quant.scales" in _message(path)


def test_a_file_of_random_bytes(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(range(256)) * 8)
    assert "not an nvmxbar model file (not a torch file:" in _message(path)


def test_a_text_file(tmp_path):
    path = tmp_path / "model.pt"
    path.write_text("model: conv [8, M, 16]\n")
    assert "not an nvmxbar model file (not a torch file:" in _message(path)


def test_an_empty_file(tmp_path):
    path = tmp_path / "model.pt"
    path.touch()
    assert _message(path) == f"{path}: not an nvmxbar model file (the file is empty)"


def test_a_truncated_model_file(tmp_path):
    path, _, _ = _model(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    msg = _message(path)
    assert f"damaged or truncated model file ({len(data) // 2} bytes; torch cannot read it:" in msg


def test_a_torch_file_of_a_tensor(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.zeros(3, 4), path)
    assert "not an nvmxbar model file (it holds a tensor of shape (3, 4), not a model document)" in _message(path)


def test_a_bare_state_dict(tmp_path):
    """A torch file of weights alone (net.state_dict()), with no format tag or architecture."""
    net, _ = small_net(ARCH, None)
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    msg = _message(path)
    assert f"not an nvmxbar model file (format None, expected {MODEL_FORMAT!r}; its keys: layers.0.bias" in msg


def test_a_torch_file_with_other_objects(tmp_path):
    """E.g. a training checkpoint: objects that weights_only loading refuses."""
    path = tmp_path / "model.pt"
    torch.save({"hparams": argparse.Namespace(lr=0.1), "state_dict": {}}, path)
    msg = _message(path)
    assert "not an nvmxbar model file (a torch file holding objects a model file never holds" in msg
    assert "argparse.Namespace" in msg


def test_another_format_version(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"format": "nvmxbar.model/0", "state_dict": {}}, path)
    assert "format 'nvmxbar.model/0', expected 'nvmxbar.model/1'" in _message(path)


def test_a_model_document_without_its_architecture(tmp_path):
    net, _ = small_net(ARCH, None)
    doc = _doc(net, ARCH)
    del doc["arch"]
    path = tmp_path / "model.pt"
    save_model(path, doc)
    assert _message(path) == f"{path}: an nvmxbar model file without arch"


def test_an_architecture_that_cannot_be_built(tmp_path):
    net, _ = small_net(ARCH, None)
    path = tmp_path / "model.pt"
    save_model(path, _doc(net, {"in_shape": [9, 32], "num_classes": 3}))
    msg = _message(path)
    assert "the architecture it records cannot be built (KeyError:" in msg


def test_an_absent_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_model(tmp_path / "nothing.pt")


def test_map_crossbar_refuses_a_wrong_model_file_before_writing_anything(tmp_path):
    npz = make_synthetic_npz(tmp_path / "har.npz", classes=3)
    wide, _ = small_net({**ARCH, "conv": [8, "M", 32, "M"]}, QUANT)
    model = tmp_path / "in" / "model.pt"
    model.parent.mkdir()
    save_model(model, _doc(wide, ARCH, QUANT))  # weights of another network
    (tmp_path / "in" / "metrics.json").write_text(json.dumps({"mlflow_run_id": None, "data_sha256": "x"}))
    out = tmp_path / "out"
    with pytest.raises(ModelFileError, match=re.escape(f"{model}: its weights do not fit")):
        map_crossbar.run(
            model_path=model,
            model_metrics=tmp_path / "in" / "metrics.json",
            data_npz=npz,
            out_npz=out / "crossbar.npz",
            out_json=out / "mapping.json",
            dataset="har",
            variant="uniform",
            bits=2,
            settings=map_settings(),
            seed=0,
            device="cpu",
        )
    assert not out.exists() or not any(out.iterdir())  # nothing written, not even a temporary file
