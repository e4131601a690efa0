"""Unipolar architecture search: search space, selection rule, pruning, shared study, MLflow nesting."""
import csv
import json
import multiprocessing as mp

import mlflow
import optuna
import pytest
import torch

from conftest import REPO
from nvmxbar import config, data, models, nas
from nvmxbar.quant import polarity_mask

CFG = config.load(REPO / "config.yaml", {"profile": "smoke"})


def _row(trial, acc, area, state="COMPLETE"):
    return {"trial": trial, "state": state, "val_accuracy": acc, "area_um2": area, "devices": int(area),
            "model": json.dumps({"conv": [trial, "M"]})}


def test_pareto_front_and_selection_rule():
    rows = [_row(0, 0.90, 50.0), _row(1, 0.93, 80.0), _row(2, 0.925, 60.0), _row(3, 0.80, 40.0),
            _row(4, 0.91, 90.0), _row(5, 0.99, 10.0, "PRUNED")]
    front = nas.pareto_front(rows)
    assert [r["trial"] for r in front] == [3, 0, 2, 1]  # 4 is dominated by 1; pruned trials never count
    pick, rule = nas.choose(rows, margin=0.01)
    assert pick["trial"] == 2 and "within 0.0100" in rule  # smallest area within 0.01 of the best (0.93)
    assert nas.choose(rows, margin=0.0)[0]["trial"] == 1
    assert nas.choose(rows, margin=0.2)[0]["trial"] == 3
    with pytest.raises(ValueError, match="no COMPLETE trial"):
        nas.choose([_row(0, 0.9, 1.0, "PRUNED")], margin=0.01)


def test_finalists_are_the_best_complete_trials_and_the_choice_is_on_their_mean_full_recipe_score():
    rows = [_row(0, 0.90, 50.0), _row(1, 0.93, 80.0), _row(2, 0.925, 60.0), _row(3, 0.80, 40.0),
            _row(4, 0.91, 90.0), _row(5, 0.99, 10.0, "PRUNED"), _row(6, 0.93, 70.0)]
    fin = nas.finalist_rows(rows, 3)
    assert [r["trial"] for r in fin] == [6, 1, 2]  # by search score; the tie (0.93) by area; pruned never
    assert len(nas.finalist_rows(rows, 99)) == 6 and nas.finalist_rows(rows, 0) == []
    # one finalist per network: trial 7 samples trial 1's network again and scores better; trial 1 drops out
    again = {**_row(7, 0.935, 80.0), "model": json.dumps({"conv": [1, "M"]}, indent=1)}
    assert [r["trial"] for r in nas.finalist_rows(rows + [again], 3)] == [7, 6, 2]
    assert {nas.finalist_seed(0, i) for i in range(3)} == {1, 2, 3}  # never the workflow seed itself
    # full-recipe scores turn the order round: trial 2 (the smallest) is best, trial 6 lost 5 points
    docs = [{"trial": 6, "rank": 0, "val_acc_noisy": 0.88}, {"trial": 6, "rank": 0, "val_acc_noisy": 0.90},
            {"trial": 1, "rank": 1, "val_acc_noisy": 0.93}, {"trial": 1, "rank": 1, "val_acc_noisy": 0.92},
            {"trial": 2, "rank": 2, "val_acc_noisy": 0.94}, {"trial": 2, "rank": 2, "val_acc_noisy": 0.93},
            {"trial": None, "rank": 3}]
    final = nas.rescore(rows, docs)
    by = {r["trial"]: r for r in final}
    assert set(by) == {6, 1, 2}
    assert by[2]["val_accuracy"] == pytest.approx(0.935) and by[2]["search_val_accuracy"] == 0.925
    assert by[6]["final_val_std"] == pytest.approx(0.0141421, rel=1e-4) and by[1]["final_seeds"] == 2
    assert nas.choose(final, margin=0.01)[0]["trial"] == 2
    assert nas.choose(rows, margin=0.01)[0]["trial"] == 2  # ... the search score alone: 2 too, by area
    assert nas.choose(nas.rescore(rows, docs[:4]), margin=0.05)[0]["trial"] == 6  # smallest within 5 points


def test_sampled_models_build_and_respect_their_polarity():
    space = {"blocks": [1, 2], "convs_per_block": 2, "widths": [4, 8], "kernel_sizes": [3, 5], "hidden": [0, 16],
             "polarity": ["positive", "row_groups", "col_groups"], "pools_per_block": [1, 2], "input_split": [True, False]}
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    seen, shapes = set(), set()
    for _ in range(12):
        t = study.ask()
        mc = nas.sample_model(t, space, {"dropout": 0.0, "bias": True})
        arch = models.make_arch([9, 32], 6, mc)
        net = models.build(arch, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
        assert len(arch["polarity"]) == len(net.layers)
        for i, layer in enumerate(net.layers):
            mask = getattr(net, f"_pol{i}")
            assert torch.equal(mask, polarity_mask(layer.weight.shape, arch["polarity"][i]))
            assert ((layer.weight * mask) >= 0).all()
            seen.add((arch["polarity"][i]["row_groups"], arch["polarity"][i]["col_groups"]))
        assert net.layers[0].in_channels == (18 if mc["input_split"] else 9)
        assert sum(net.pool_after) == mc["conv"].count("M") and net(torch.randn(2, 9, 32)).shape == (2, 6)
        shapes.add((mc["input_split"], max(net.pool_after)))
        study.tell(t, [0.5, 1.0])
    assert seen == {(1, 1), (2, 1), (1, 2)}
    assert shapes == {(True, 1), (True, 2), (False, 1), (False, 2)}


def test_enqueued_architectures_are_the_parameters_the_search_samples_them_by():
    space = {"blocks": [1, 2], "convs_per_block": 1, "widths": [16, 32, 64], "kernel_sizes": [5, 7], "hidden": [0, 16],
             "polarity": ["positive", "row_groups"], "pools_per_block": [1, 2], "input_split": [True, False]}
    model = {"conv": [32, "M", 64, "M", "M"], "kernel_size": [7, 5], "input_split": True, "hidden": [],
             "polarity": ["positive", "row_groups", "positive"]}
    params = nas.enqueue_params(model, space)
    assert params == {"width0": 32, "kernel0": 7, "pools0": 1, "width1": 64, "kernel1": 5, "pools1": 2, "blocks": 2,
                      "input_split": True, "hidden": 0, "polarity0": "positive", "polarity1": "row_groups",
                      "polarity2": "positive"}
    # the search rebuilds exactly this network from them
    got = nas.sample_model(optuna.trial.FixedTrial(params), space, {"dropout": 0.0, "bias": True})
    assert got["conv"] == model["conv"] and got["kernel_size"] == [7, 5] and got["input_split"] and got["hidden"] == []
    assert [p["row_groups"] for p in got["polarity"]] == [1, 2, 1]
    for bad, msg in (({"conv": [48, "M"], "kernel_size": 5}, "width 48"), ({"conv": [32, 32, "M"], "kernel_size": 5}, "pools per block 0"),
                     ({"conv": [32, "M"], "kernel_size": [5, 7]}, "2 entries for 1"),
                     ({"conv": [32, "M"], "kernel_size": 5, "polarity": "col_groups"}, "col_groups")):
        with pytest.raises(ValueError, match=msg):
            nas.enqueue_params(bad, space)
    with pytest.raises(config.ConfigError, match=r"nas_unipolar.space.har.enqueue\[0\]': width 48"):
        config.load(REPO / "config.yaml", {"nas_unipolar": {"space": {"har": {"enqueue": [{"conv": [48, "M"], "kernel_size": 5}]}}}})


def test_area_objective_grows_with_width_and_row_groups():
    base = {"conv": [8, "M"], "kernel_size": [5], "hidden": [], "dropout": 0.0, "bias": True}
    args = ([9, 128], 6, 2, CFG["quant"], CFG["map_crossbar"], CFG["estimate_cost"])
    small = nas.hardware_of({**base, "polarity": "positive"}, *args)
    wide = nas.hardware_of({**base, "conv": [64, "M"], "polarity": "positive"}, *args)
    split = nas.hardware_of({**base, "polarity": {"sign": 1, "row_groups": 2}}, *args)
    assert wide["area_um2"] > small["area_um2"] and split["tiles"] > small["tiles"]
    assert split["sign_flips"] > 0 == small["sign_flips"]


def test_median_pruning_rule_is_optunas_best_so_far_against_complete_trials_at_the_same_epoch():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for k, curve in enumerate([[0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.3, 0.8, 0.9], [0.2, 0.1], [0.55, 0.7, 0.4]]):
        study.add_trial(optuna.trial.create_trial(
            values=[max(curve), 1.0] if len(curve) == 3 else None, user_attrs={"val_acc_curve": curve},
            state=optuna.trial.TrialState.COMPLETE if len(curve) == 3 else optuna.trial.TrialState.PRUNED,
            distributions={}, params={}))
    p = {"enabled": True, "warmup_epochs": 2, "min_trials": 3}
    assert not nas._median_pruner(study, 99, [0.0], p)  # before warm-up: never
    # epoch 2: median of the complete trials [0.6, 0.5, 0.8, 0.7] = 0.65; the pruned trial's 0.1 does not count
    assert nas._median_pruner(study, 99, [0.2, 0.64], p)
    assert not nas._median_pruner(study, 99, [0.2, 0.66], p)
    # a dip does not prune a trial whose best epoch cleared the bar (Optuna's MedianPruner rule)
    assert not nas._median_pruner(study, 99, [0.7, 0.3], p)
    assert nas._median_pruner(study, 99, [0.1, 0.1, 0.5], p)   # epoch 3: median of [0.7, 0.6, 0.9, 0.4] = 0.65
    assert not nas._median_pruner(study, 99, [0.1, 0.1, 0.5], {**p, "min_trials": 5})  # too few to judge
    assert not nas._median_pruner(study, 99, [0.2, 0.1], {**p, "enabled": False})


@pytest.fixture(scope="module")
def har_tiny(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("har")
    src = data.find_source("har", data_dir, download=False)
    data.prepare("har", src, out / "har.npz", out / "har.json", seed=0, limit={"train": 300, "val": 120, "test": 120})
    return out


ENQUEUED = {"conv": [8, "M"], "kernel_size": 5, "polarity": ["row_groups", "positive"]}


def test_subject_folds_validate_on_other_people_and_lose_no_window(har_tiny, tmp_path):
    import numpy as np

    d = dict(np.load(har_tiny / "har.npz"))
    prepared = sorted(np.unique(d["subject_val"]).tolist())
    assert data.subject_fold(har_tiny / "har.npz", tmp_path / "f0.npz", 0, seed=0) == prepared
    assert not (tmp_path / "f0.npz").exists()  # fold 0 is the prepared split itself
    seen = [set(prepared)]
    for k in (1, 2, 3):
        chosen = data.subject_fold(har_tiny / "har.npz", tmp_path / f"f{k}.npz", k, seed=0)
        f = dict(np.load(tmp_path / f"f{k}.npz"))
        assert len(chosen) == len(prepared) and all(not (set(chosen) & s) for s in seen)  # disjoint groups
        seen.append(set(chosen))
        assert sorted(np.unique(f["subject_val"]).tolist()) == chosen
        assert not set(chosen) & set(np.unique(f["subject_train"]).tolist())
        assert set(prepared) <= set(np.unique(f["subject_train"]).tolist())  # the prepared ones train now
        assert len(f["y_train"]) + len(f["y_val"]) == len(d["y_train"]) + len(d["y_val"])
        assert np.array_equal(f["x_test"], d["x_test"]) and np.array_equal(f["norm_mean"], d["norm_mean"])
        # rows stay whole: each window keeps its label and subject
        both_x = np.concatenate([d["x_train"], d["x_val"]])
        both_s = np.concatenate([d["subject_train"], d["subject_val"]])
        i = int(np.flatnonzero(np.isin(both_s, chosen))[0])
        assert np.array_equal(f["x_val"][0], both_x[i])
    assert data.subject_fold(har_tiny / "har.npz", tmp_path / "g.npz", 1, seed=1) != sorted(seen[1])  # seeded
    no_subjects = {k: v for k, v in d.items() if not k.startswith("subject")}
    np.savez(tmp_path / "c.npz", **no_subjects)
    assert data.subject_fold(tmp_path / "c.npz", tmp_path / "c1.npz", 1, seed=0) is None
    assert not (tmp_path / "c1.npz").exists()


def _worker(har_tiny, nas_dir, w, uri):
    import os
    os.environ["MLFLOW_TRACKING_URI"] = uri
    cfg = {**CFG["nas_unipolar"], "trials": 4, "epochs": 3, "startup_trials": 2,
           "score": {**CFG["nas_unipolar"]["score"], "samples": None},  # the whole validation split, as training
           "space": {"har": {"blocks": [1], "convs_per_block": 1, "widths": [4, 8], "kernel_sizes": [3, 5],
                             "hidden": [0], "polarity": ["positive", "row_groups"],
                             "enqueue": [ENQUEUED]}}}
    return nas.search_worker(data_npz=har_tiny / "har.npz", nas_dir=nas_dir, out_json=nas_dir / f"worker{w}.json",
                             dataset="har", bits=2, worker=w, cfg=cfg, model_base=CFG["model"]["har"],
                             train_cfg={**CFG["train"]["har"], "batch_size": 64}, quant_cfg=CFG["quant"],
                             map_cfg=CFG["map_crossbar"], cost_cfg=CFG["estimate_cost"], seed=0,
                             experiment="nvmxbar-har", threads=1, accelerator="cpu",
                             noise_cfg=CFG["evaluate_noise"]), cfg


def test_two_workers_share_one_study_then_selection_writes_the_contract(har_tiny, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # this process only (no global set_tracking_uri)
    nas_dir = tmp_path / "nas"
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        docs = pool.starmap(_worker, [(har_tiny, nas_dir, 0, uri), (har_tiny, nas_dir, 1, uri)])
    cfg = docs[0][1]
    runs = sorted(n for d, _ in docs for n in d["trials_run"])
    assert len(runs) == 4 and len(set(runs)) == len(runs)  # one study, no repeated trial, no overshoot
    # the enqueued architecture is trial 0, once although both workers enqueue it
    first = optuna.load_study(study_name=docs[0][0]["study"], storage=nas.storage(nas_dir)).trials
    assert first[0].params == {"blocks": 1, "width0": 8, "kernel0": 5, "hidden": 0, "polarity0": "row_groups",
                               "polarity1": "positive"}
    assert sum(t.params == first[0].params for t in first) == 1
    doc = nas.select_stage(nas_dir=nas_dir, out_trials=nas_dir / "trials.csv", out_pareto=nas_dir / "pareto.csv",
                           out_arch=nas_dir / "arch.json", dataset="har", bits=2, cfg=cfg,
                           model_base=CFG["model"]["har"], seed=0, experiment="nvmxbar-har")
    rows = list(csv.DictReader(open(nas_dir / "trials.csv")))
    assert len(rows) == len(runs) and {"trial", "state", "val_accuracy", "area_um2", "devices", "model"} <= set(rows[0])
    arch = json.loads((nas_dir / "arch.json").read_text())
    assert arch["model"]["polarity"] and "smallest area_um2" in arch["rule"] and arch == json.loads(json.dumps(doc))
    assert (nas_dir / "pareto.png").stat().st_size > 10_000 and (nas_dir / "pareto.pdf").exists()
    # the chosen architecture rebuilds as a unipolar network
    net = models.build(models.make_arch([9, 128], 6, arch["model"]), {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
    assert net.polarity is not None
    # MLflow: one search run, every trial nested under it
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("nvmxbar-har")
    all_runs = client.search_runs([exp.experiment_id])
    parents = [r for r in all_runs if r.data.tags.get("rule") == "nas_unipolar"]
    trials = [r for r in all_runs if r.data.tags.get("rule") == "nas_unipolar_search"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == len(runs) and all(t.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for t in trials)
    assert all("area_um2" in t.data.metrics and "val_acc" in t.data.metrics for t in trials)
    # the accuracy objective is the mapped crossbar's under programming noise (config score): the ideal crossbar
    # reproduces the trained network (per-tile ADC in training), the noisy chips are what the trial scores
    assert cfg["score"]["prog_sigma"] > 0 and "programming noise sigma" in arch["rule"]
    study = optuna.load_study(study_name=doc["study"], storage=nas.storage(nas_dir))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        a = t.user_attrs
        assert t.values[0] == a["val_acc_noisy"] != a["val_acc_crossbar"]
        assert a["val_acc_crossbar"] == pytest.approx(a["val_acc_curve"][-1], abs=1.5 / 120)
    assert all("val_acc_noisy" in t.data.metrics for t in trials if t.data.tags.get("optuna.state") == "COMPLETE")
    # finalists: the best COMPLETE trials retrained with the full recipe (train.train) and rescored on noisy
    # crossbars; a rank beyond the COMPLETE trials has no candidate; selection is then among the finalists
    fin_cfg = {**cfg, "finalists": {"count": 2, "seeds": 1}}
    train_cfg = {**CFG["train"]["har"], "batch_size": 64, "epochs": 2}
    fdocs = []
    for rank in (0, 1, len(done)):
        fdocs.append(nas.finalist_stage(
            workers=sorted(nas_dir.glob("worker*.json")), out_json=nas_dir / "finalists" / f"rank{rank}_rep0.json",
            data_npz=har_tiny / "har.npz", data_json=har_tiny / "har.json", dataset="har", bits=2, rank=rank, rep=0,
            cfg=fin_cfg, model_base=CFG["model"]["har"], train_cfg=train_cfg, quant_cfg=CFG["quant"],
            map_cfg=CFG["map_crossbar"], noise_cfg=CFG["evaluate_noise"], seed=0, experiment="nvmxbar-har",
            accelerator="cpu"))
    # a second seed with val_folds validates on another group of subjects; the fold file does not stay behind
    fold_doc = nas.finalist_stage(
        workers=sorted(nas_dir.glob("worker*.json")), out_json=nas_dir / "folds" / "rank0_rep1.json",
        data_npz=har_tiny / "har.npz", data_json=har_tiny / "har.json", dataset="har", bits=2, rank=0, rep=1,
        cfg={**fin_cfg, "finalists": {**fin_cfg["finalists"], "val_folds": True}}, model_base=CFG["model"]["har"],
        # fit_on train+val is for deployments: a finalist is scored on held-out people, so it never fits on them
        train_cfg={**train_cfg, "fit_on": "train+val"}, quant_cfg=CFG["quant"], map_cfg=CFG["map_crossbar"],
        noise_cfg=CFG["evaluate_noise"], seed=0, accelerator="cpu")
    assert fold_doc["val_subjects"] == data.subject_fold(har_tiny / "har.npz", tmp_path / "x.npz", 1, seed=0)
    assert not set(fold_doc["val_subjects"]) & set(fdocs[0]["val_subjects"]) and fdocs[0]["trial"] == fold_doc["trial"]
    fm = json.loads((nas_dir / "folds" / "rank0_rep1" / "metrics.json").read_text())
    import numpy as np
    with np.load(har_tiny / "har.npz") as d:
        people = np.concatenate([d["subject_train"], d["subject_val"]])
    assert fm["n_val"] == int(np.isin(people, fold_doc["val_subjects"]).sum())  # it validated on that group
    assert fm["fit_on"] == "train" and fm["n_fit"] + fm["n_val"] == len(people)
    assert not (nas_dir / "folds" / "rank0_rep1" / "fold.npz").exists()
    ranked = nas.finalist_rows(nas.trial_rows(study), 2)
    assert [d["trial"] for d in fdocs] == [r["trial"] for r in ranked][:2] + [None]
    for d in fdocs[:2]:
        assert d["seed"] == 1 and d["epochs"] == 2 and 0 <= d["val_acc_noisy"] <= 1
        assert d["val_acc_noisy"] != d["search_val_accuracy"]  # rescored, not copied
        m = json.loads((nas_dir / "finalists" / f"rank{d['rank']}_rep0" / "metrics.json").read_text())
        assert m["seed"] == 1 and m["epochs"] == 2 and m["val_accuracy"] == d["val_acc_trained"]
    sel = nas.select_stage(nas_dir=nas_dir, out_trials=nas_dir / "trials.csv", out_pareto=nas_dir / "pareto.csv",
                           out_arch=nas_dir / "arch.json", dataset="har", bits=2, cfg=fin_cfg,
                           model_base=CFG["model"]["har"], seed=0, experiment="nvmxbar-har",
                           finalists=sorted((nas_dir / "finalists").glob("*.json")))
    assert sel["trial"] in {d["trial"] for d in fdocs[:2]} and "finalists" in sel["rule"]
    assert {f["trial"] for f in sel["finalists"]} == {d["trial"] for d in fdocs[:2]}
    assert sel["val_accuracy"] == next(d["val_acc_noisy"] for d in fdocs if d["trial"] == sel["trial"])
    rows = {int(r["trial"]): r for r in csv.DictReader(open(nas_dir / "trials.csv"))}
    assert float(rows[fdocs[0]["trial"]]["final_val_accuracy"]) == pytest.approx(fdocs[0]["val_acc_noisy"])
    fruns = [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("rule") == "nas_unipolar_finalist"]
    assert len(fruns) == 2 and all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in fruns)
    assert all("val_acc_noisy" in r.data.metrics and r.data.tags["variant"] == "unipolar" for r in fruns)
    # a finalist file of another study is refused, by name
    stale_doc = {**fdocs[0], "study": "har-unipolar-b2-0000000000"}
    (nas_dir / "old.json").write_text(json.dumps(stale_doc))
    with pytest.raises(ValueError, match="another study"):
        nas.select_stage(nas_dir=nas_dir, out_trials=nas_dir / "t.csv", out_pareto=nas_dir / "p.csv",
                         out_arch=nas_dir / "a.json", dataset="har", bits=2, cfg=fin_cfg, model_base=CFG["model"]["har"],
                         seed=0, finalists=[nas_dir / "old.json"])
    # a worker started again on a finished study runs no trial (a rerun resumes, it does not redo); a trial it
    # left RUNNING when killed is marked FAIL instead of holding a slot
    stale = study.ask()
    stale.set_user_attr("worker", 0)
    again, _ = _worker(har_tiny, nas_dir, 0, uri)
    assert again["trials_run"] == []
    assert study.trials[stale.number].state == optuna.trial.TrialState.FAIL
