"""Real Lightning training on a small stratified subset of the real UCI HAR data (nvmxbar.stages.train)."""

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
from itertools import pairwise

import mlflow
import numpy as np
import pytest
import torch

from integration import _killpoint as kp
from integration._helpers import EXPERIMENT, MODEL, RECIPE, REPO, run
from nvmxbar import tracking
from nvmxbar.data.datamodule import NpzDataModule
from nvmxbar.training.model_io import load_model
from nvmxbar.training.resume import AtomicCheckpointIO


def _track(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.default_uri(tmp_path))
    tracking.ensure_experiments({"har": EXPERIMENT}, tmp_path)


def test_same_seed_same_numbers(har_small, tmp_path):
    a = run(har_small, tmp_path / "a")
    b = run(har_small, tmp_path / "b")
    assert a["test_accuracy"] == b["test_accuracy"] and a["val_accuracy"] == b["val_accuracy"]
    sa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_model_file_loads_with_weights_only_and_reproduces_accuracy(har_small, tmp_path):
    m = run(har_small, tmp_path, variant="uniform", bits=4)
    assert 0.3 < m["test_accuracy"] <= 1.0 and 0.3 < m["val_accuracy"] <= 1.0  # 6 classes: chance is 1/6
    assert set(m["per_class_accuracy"]) == {
        "WALKING",
        "WALKING_UPSTAIRS",
        "WALKING_DOWNSTAIRS",
        "SITTING",
        "STANDING",
        "LAYING",
    }
    assert m["epochs"] == 2 and m["wall_time_s"] > 0 and m["quant"]["weight_bits"] == 4 and m["threads"] == 1
    net, doc = load_model(tmp_path / "model.pt")
    assert doc["arch"]["conv"] == MODEL["conv"] and doc["quant"]["weight_bits"] == 4 and doc["bits"] == 4
    assert bool(net.quant.calibrated)
    assert float(net.quant.weight_fullscale) == pytest.approx(m["quant"]["weight_fullscale"])
    d = np.load(har_small / "har.npz")
    with torch.no_grad():
        acc = (net(torch.from_numpy(d["x_test"])).argmax(1).numpy() == d["y_test"]).mean()
    assert acc == pytest.approx(m["test_accuracy"])
    assert not (tmp_path / "checkpoints").exists() and not list(tmp_path.glob(".*tmp*"))


def test_baseline_is_float(har_small, tmp_path):
    m = run(har_small, tmp_path, variant="baseline", bits=None)
    net, doc = load_model(tmp_path / "model.pt")
    assert net.quant is None and doc["quant"] is None and m["quant"] is None and m["bits"] is None


def test_mlflow_run_has_params_epoch_metrics_artifacts_and_tags(har_small, tmp_path, monkeypatch):
    _track(tmp_path, monkeypatch)
    m = run(har_small, tmp_path / "m", experiment=EXPERIMENT)
    client = mlflow.MlflowClient()
    r = client.get_run(m["mlflow_run_id"])
    assert r.info.status == "FINISHED"
    for tag in ("dataset", "variant", "bits", "seed", "rule", "git_commit", "config_hash", "data_sha256"):
        assert r.data.tags.get(tag), tag
    assert (r.data.tags["dataset"], r.data.tags["variant"], r.data.tags["bits"]) == ("har", "uniform", "2")
    assert r.data.tags["data_sha256"] == json.loads((har_small / "har.json").read_text())["source"]["sha256"]
    assert r.data.tags["mlflow.source.name"] == "rule train"  # the runs table's Source and Dataset columns
    npz_sha = hashlib.sha256((har_small / "har.npz").read_bytes()).hexdigest()
    assert {i.dataset.name: i.dataset.digest for i in r.inputs.dataset_inputs} == {
        f"har-{split}": npz_sha[:36] for split in ("train", "val", "test")
    }
    assert r.data.params["model.conv"] == json.dumps(MODEL["conv"]) and r.data.params["train.epochs"] == "2"
    # one point per epoch, in epoch order (Lightning's MLFlowLogger: the step is its global step, not the epoch)
    steps = [h.step for h in client.get_metric_history(r.info.run_id, "val_acc")]
    assert len(steps) == 2 and steps == sorted(set(steps))
    assert r.data.metrics["test_accuracy"] == pytest.approx(m["test_accuracy"])
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"model.pt", "metrics.json"} <= arts


RESUME_RECIPE = {**RECIPE, "epochs": 4, "augment": True}  # augmentation: one more draw per batch


@pytest.fixture(scope="module")
def uninterrupted(har_small, tmp_path_factory):
    """The state_dict and metrics of a training that ran through, per (variant, bits), trained once per module."""
    done = {}

    def get(variant, bits, wires=False):
        if (variant, bits, wires) not in done:
            out = tmp_path_factory.mktemp(f"uninterrupted-{variant}")
            m = kp.run(har_small, out, variant, bits, recipe=RESUME_RECIPE, wires=wires)
            doc = torch.load(out / "model.pt", weights_only=True)
            assert doc["quant"] is None or doc["quant"]["train_noise"] == kp.TRAIN_NOISE  # its noise draws too
            done[variant, bits, wires] = doc["state_dict"], m
        return done[variant, bits, wires]

    return get


@pytest.mark.parametrize(
    ("variant", "bits", "point", "wires"),
    [
        ("uniform", 2, "mid_epoch", False),
        ("uniform", 2, "after_checkpoint", False),
        ("uniform", 2, "mid_epoch", True),
        ("baseline", None, "mid_epoch", False),
        ("baseline", None, "writing_checkpoint", False),
    ],
)
def test_killed_job_resumes_bitwise(har_small, tmp_path, monkeypatch, uninterrupted, variant, bits, point, wires):
    """SIGKILL a real training (dropout, augmentation, the quantizer's training noise, shuffled batches; one
    hardware-aware against IR drop, its weight errors recomputed at every epoch's start) at a point it signals: in
    the middle of an epoch, just after an epoch's checkpoints, or half-way through writing one. The rerun resumes
    from last.ckpt (the same MLflow run) and ends with the weights, bit for bit, of the training that was never
    killed."""
    _track(tmp_path, monkeypatch)
    out, log = tmp_path / "r", tmp_path / "child.log"
    ready, ready_w = os.pipe()  # the child writes one line when it stands at its kill point
    args = {
        "har_dir": str(har_small),
        "out": str(out),
        "ready_fd": ready_w,
        "variant": variant,
        "bits": bits,
        "point": point,
        "recipe": RESUME_RECIPE,
        "experiment": EXPERIMENT,
        "wires": wires,
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src")])}
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from integration._killpoint import main; main()", json.dumps(args)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            pass_fds=(ready_w,),
        )
    os.close(ready_w)  # the child holds the only write end: its exit ends the pipe
    try:  # generous: CI machines may be loaded
        line = os.read(ready, 4096) if select.select([ready], [], [], kp.WAIT_S)[0] else b""
    finally:
        os.close(ready)
    if not line:
        proc.kill()
        pytest.fail(f"the training never reached its kill point (exit {proc.wait()}): {log.read_text()[-3000:]}")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    where = json.loads(line)
    ckpt = out / "checkpoints"
    assert not (out / "model.pt").exists() and not (out / "metrics.json").exists()
    last = torch.load(ckpt / "last.ckpt", weights_only=True)  # whole, and loadable as Lightning loads it
    assert where["epoch"] == 2 and last["epoch"] == 1  # the third epoch was under way: it resumes after the second
    if point == "writing_checkpoint":
        assert list(ckpt.glob(".*.tmp.ckpt"))  # killed half-way through a checkpoint: only its temporary file

    starts = kp.Starts()
    m = kp.run(
        har_small, out, variant, bits, callbacks=[starts], recipe=RESUME_RECIPE, experiment=EXPERIMENT, wires=wires
    )
    assert m["resumed"] is True and m["train_wires"] == (kp.WIRE_SCALE if wires else None)
    assert starts.start == (2, last["global_step"]) and starts.epochs == [2, 3]  # resumed, not from scratch
    want_sd, want = uninterrupted(variant, bits, wires)
    got_sd = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    assert got_sd.keys() == want_sd.keys()
    assert [k for k in want_sd if not torch.equal(got_sd[k], want_sd[k])] == []
    assert (m["test_accuracy"], m["val_accuracy"]) == (want["test_accuracy"], want["val_accuracy"])

    everything = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")
    runs = [r for r in everything if r.data.tags["rule"] != "group"]  # the parent of the model's seed runs aside
    assert len(runs) == 1 and runs[0].info.run_id == m["mlflow_run_id"] and runs[0].info.status == "FINISHED"
    assert [r.info.run_id for r in everything if r.data.tags["rule"] == "group"] == [m["mlflow_group_run_id"]]
    assert runs[0].data.tags["mlflow.parentRunId"] == m["mlflow_group_run_id"]  # kept by the resumed run
    steps = [h.step for h in mlflow.MlflowClient().get_metric_history(m["mlflow_run_id"], "val_acc")]
    # every epoch logged once across both processes (an epoch the killed process logged but did not checkpoint
    # is logged again at the same global step): one step per epoch, evenly spaced (the batches of an epoch)
    s = sorted(set(steps))
    assert len(s) == RESUME_RECIPE["epochs"] and len({b - a for a, b in pairwise(s)}) == 1
    errors = mlflow.MlflowClient().get_metric_history(m["mlflow_run_id"], "train_wire_error_lsb")
    if wires:  # the weights' IR-drop errors, rms in weight steps, once per epoch
        assert sorted({h.step for h in errors}) == s and all(0.01 < h.value < 1 for h in errors), errors
    else:
        assert errors == []


def test_datamodule_state_continues_the_shuffle_and_a_new_fit_starts_anew(har_small):
    """The state a checkpoint saves gives a new datamodule (a resumed job's) the next epoch's permutation, not the
    first one again; the calibration batch does not advance the generator; setup('fit') forgets a restored state."""

    def batches(loader):  # the labels of each batch identify the windows' order
        return [y for _, y in loader]

    a = NpzDataModule(har_small / "har.npz", 64, seed=3)
    loader = a.train_dataloader()
    first = batches(loader)
    assert torch.equal(a.first_batch()[1], first[0])
    state = a.state_dict()
    second = batches(loader)
    b = NpzDataModule(har_small / "har.npz", 64, seed=3)
    b.setup("fit")
    b.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(batches(b.train_dataloader()), second, strict=True))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    b.setup("fit")  # a fit that does not resume
    assert all(torch.equal(x, y) for x, y in zip(batches(b.train_dataloader()), first, strict=True))
    with pytest.raises(ValueError, match="'shuffle'"):
        b.load_state_dict({})


def test_a_checkpoint_is_whole_or_the_previous_one(tmp_path):
    """AtomicCheckpointIO: a write that fails half-way leaves the previous file and no temporary one."""
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.arange(4)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        io.save_checkpoint({"epoch": 2, "w": torch.arange(1 << 20), "x": Unpicklable()}, path)
    ck = torch.load(path, weights_only=True)
    assert ck["epoch"] == 1 and torch.equal(ck["w"], torch.arange(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_checkpoint_without_generator_states_resumes_with_a_warning(har_small, tmp_path, monkeypatch, caplog):
    """A checkpoint written before the generator states were saved still resumes, and says it is not bitwise."""
    monkeypatch.setattr("nvmxbar.stages.train.shutil.rmtree", lambda *a, **k: None)  # keep the checkpoints
    m = run(har_small, tmp_path, variant="baseline", bits=None, recipe={"epochs": 2})
    last = tmp_path / "checkpoints" / "last.ckpt"
    ck = torch.load(last, weights_only=True)
    assert ck["NpzDataModule"]["shuffle"].dtype == torch.uint8 and "RandomStreams" in ck["callbacks"]
    del ck["NpzDataModule"], ck["callbacks"]["RandomStreams"]  # as the code before 2026-12-07 wrote it
    torch.save(ck, last)
    (tmp_path / "checkpoints.json").write_text(json.dumps({"config_hash": m["config_hash"], "run_id": None}))
    again = run(har_small, tmp_path, variant="baseline", bits=None, recipe={"epochs": 2})
    assert again["resumed"] is True and "not bitwise" in caplog.text


def test_last_checkpoint_is_rewritten_every_epoch(har_small, tmp_path, monkeypatch):
    """A killed run resumes from its last epoch, not from its best one: last.ckpt follows every epoch even when
    validation did not improve (Lightning's own save_last only rewrites it in epochs that improved the best)."""
    monkeypatch.setattr("nvmxbar.stages.train.shutil.rmtree", lambda *a, **k: None)  # keep the checkpoints
    m = run(har_small, tmp_path, recipe={"epochs": 3, "lr": 0.0})  # no step changes anything: epoch 1 stays best
    ck = tmp_path / "checkpoints"
    assert m["best_epoch"] == 1 and torch.load(ck / "best.ckpt", weights_only=False)["epoch"] == 0
    assert torch.load(ck / "last.ckpt", weights_only=False)["epoch"] == 2
    assert m["select"] == "last" and m["selected_epoch"] == 3


@pytest.mark.parametrize("select", ["last", "best_val"])
def test_select_chooses_the_exported_epoch(har_small, tmp_path, monkeypatch, select):
    """model.pt holds the weights of the selected checkpoint: the last epoch, or the best validation epoch."""
    monkeypatch.setattr("nvmxbar.stages.train.shutil.rmtree", lambda *a, **k: None)
    m = run(har_small, tmp_path, recipe={"epochs": 3, "select": select})
    ck = torch.load(tmp_path / "checkpoints" / ("last.ckpt" if select == "last" else "best.ckpt"), weights_only=False)
    assert m["selected_epoch"] == ck["epoch"] + 1 == (3 if select == "last" else m["best_epoch"])
    sd = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sd[k], ck["state_dict"]["net." + k]) for k in sd)


def test_unknown_select_is_refused(har_small, tmp_path):
    with pytest.raises(ValueError, match="select"):
        run(har_small, tmp_path, recipe={"epochs": 1, "select": "best"})


def test_fit_on_train_val_trains_on_every_validation_window_too(har_small, tmp_path):
    d = np.load(har_small / "har.npz")
    seen = {}
    for fit_on in ("train", "train+val"):
        batches = list(NpzDataModule(har_small / "har.npz", 64, fit_on=fit_on).train_dataloader())
        seen[fit_on] = torch.cat([x for x, _ in batches]).flatten(1)
    assert len(seen["train"]) == len(d["y_train"]) == 600
    assert len(seen["train+val"]) == len(d["y_train"]) + len(d["y_val"]) == 800
    key = lambda rows: {r.numpy().tobytes() for r in rows}  # noqa: E731
    assert key(torch.from_numpy(d["x_val"]).flatten(1)) <= key(seen["train+val"])
    assert not key(torch.from_numpy(d["x_val"]).flatten(1)) & key(seen["train"])
    both = run(har_small, tmp_path / "both", recipe={"epochs": 1, "fit_on": "train+val"})
    plain = run(har_small, tmp_path / "plain", recipe={"epochs": 1, "fit_on": "train"})
    keyless = run(har_small, tmp_path / "keyless", recipe={"epochs": 1})
    assert (both["fit_on"], both["n_fit"]) == ("train+val", 800) and (plain["fit_on"], plain["n_fit"]) == ("train", 600)
    # the default leaves a model's hash as it was before the key existed; train+val is another model
    assert plain["config_hash"] == keyless["config_hash"] != both["config_hash"]
    with pytest.raises(ValueError, match="best_val"):
        run(har_small, tmp_path / "x", recipe={"epochs": 1, "fit_on": "train+val", "select": "best_val"})
    with pytest.raises(ValueError, match="fit_on"):
        run(har_small, tmp_path / "y", recipe={"epochs": 1, "fit_on": "val"})


def test_changed_config_does_not_resume(har_small, tmp_path):
    out = tmp_path / "c"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "last.ckpt").write_text("stale")
    (out / "checkpoints.json").write_text(json.dumps({"config_hash": "something-else", "run_id": None}))
    m = run(har_small, out)
    assert m["resumed"] is False


def test_distillation_learns_from_the_float_baseline_and_leaves_the_baseline_alone(har_small, tmp_path):
    teacher = run(har_small, tmp_path / "teacher", variant="baseline", bits=None, recipe={"epochs": 15})
    # the baseline never distills: a distill setting does not change its hash
    same = run(
        har_small,
        tmp_path / "teacher2",
        variant="baseline",
        bits=None,
        recipe={"epochs": 15, "distill": {"alpha": 0.5, "temperature": 4.0}},
    )
    assert same["config_hash"] == teacher["config_hash"] and same["distill"] is None
    plain = run(har_small, tmp_path / "plain", recipe={"epochs": 8})
    # alpha = 1: no label reaches the loss; whatever the student learns beyond chance (1/6), the teacher taught
    pure = run(
        har_small,
        tmp_path / "pure",
        recipe={"epochs": 8, "distill": {"alpha": 1.0, "temperature": 1.0}},
        teacher=tmp_path / "teacher" / "model.pt",
    )
    assert pure["distill"] == {"alpha": 1.0, "temperature": 1.0, "teacher_config_hash": teacher["config_hash"]}
    assert pure["config_hash"] != plain["config_hash"] and plain["distill"] is None
    assert pure["test_accuracy"] > 0.5, pure["test_accuracy"]
    net_t, _ = load_model(tmp_path / "teacher" / "model.pt")
    net_p, _ = load_model(tmp_path / "pure" / "model.pt")
    net_0, _ = load_model(tmp_path / "plain" / "model.pt")
    x = torch.from_numpy(np.load(har_small / "har.npz")["x_test"])
    with torch.no_grad():
        t, p, q = net_t(x).argmax(1), net_p(x).argmax(1), net_0(x).argmax(1)
    # the distilled student agrees with its teacher more often than the one trained on labels alone
    assert (p == t).float().mean() > (q == t).float().mean()
    # the teacher stays out of the student's files
    sd = torch.load(tmp_path / "pure" / "model.pt", weights_only=True)["state_dict"]
    assert not any("teacher" in k for k in sd)
    with pytest.raises(ValueError, match="needs a teacher"):
        run(har_small, tmp_path / "x", recipe={"distill": {"alpha": 0.5, "temperature": 4.0}})
