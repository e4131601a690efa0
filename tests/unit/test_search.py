"""Unipolar architecture search without data: search space, enqueued architectures, hardware objective,
selection rule, finalists and the median pruning rule."""

import json

import optuna
import pytest
import torch
import yaml
from conftest import REPO

from nvmxbar import config
from nvmxbar.chip import Chip
from nvmxbar.core import networks
from nvmxbar.core.groups import polarity_mask
from nvmxbar.search import objective, selection, space
from nvmxbar.settings import MapSettings, Pricing, QuantSettings
from nvmxbar.workflow import load_config

CFG = config.load(REPO / "config.yaml", {"profile": "smoke"})


def _row(trial, acc, area, state="COMPLETE"):
    return {
        "trial": trial,
        "state": state,
        "val_accuracy": acc,
        "area_um2": area,
        "devices": int(area),
        "model": json.dumps({"conv": [trial, "M"]}),
    }


def test_pareto_front_and_selection_rule():
    rows = [
        _row(0, 0.90, 50.0),
        _row(1, 0.93, 80.0),
        _row(2, 0.925, 60.0),
        _row(3, 0.80, 40.0),
        _row(4, 0.91, 90.0),
        _row(5, 0.99, 10.0, "PRUNED"),
    ]
    front = selection.pareto_front(rows)
    assert [r["trial"] for r in front] == [3, 0, 2, 1]  # 4 is dominated by 1; pruned trials never count
    pick, rule = selection.choose(rows, margin=0.01)
    assert pick["trial"] == 2 and "within 0.0100" in rule  # smallest area within 0.01 of the best (0.93)
    assert selection.choose(rows, margin=0.0)[0]["trial"] == 1
    assert selection.choose(rows, margin=0.2)[0]["trial"] == 3
    with pytest.raises(ValueError, match="no COMPLETE trial"):
        selection.choose([_row(0, 0.9, 1.0, "PRUNED")], margin=0.01)


def test_finalists_are_the_best_complete_trials_and_the_choice_is_on_their_mean_full_recipe_score():
    rows = [
        _row(0, 0.90, 50.0),
        _row(1, 0.93, 80.0),
        _row(2, 0.925, 60.0),
        _row(3, 0.80, 40.0),
        _row(4, 0.91, 90.0),
        _row(5, 0.99, 10.0, "PRUNED"),
        _row(6, 0.93, 70.0),
    ]
    fin = selection.finalist_rows(rows, 3)
    assert [r["trial"] for r in fin] == [6, 1, 2]  # by search score; the tie (0.93) by area; pruned never
    assert len(selection.finalist_rows(rows, 99)) == 6 and selection.finalist_rows(rows, 0) == []
    # one finalist per network: trial 7 samples trial 1's network again and scores better; trial 1 drops out
    again = {**_row(7, 0.935, 80.0), "model": json.dumps({"conv": [1, "M"]}, indent=1)}
    assert [r["trial"] for r in selection.finalist_rows(rows + [again], 3)] == [7, 6, 2]
    assert {selection.finalist_seed(0, i) for i in range(3)} == {1, 2, 3}  # never the workflow seed itself
    # full-recipe scores turn the order round: trial 2 (the smallest) is best, trial 6 lost 5 points
    docs = [
        {"trial": 6, "rank": 0, "val_acc_noisy": 0.88},
        {"trial": 6, "rank": 0, "val_acc_noisy": 0.90},
        {"trial": 1, "rank": 1, "val_acc_noisy": 0.93},
        {"trial": 1, "rank": 1, "val_acc_noisy": 0.92},
        {"trial": 2, "rank": 2, "val_acc_noisy": 0.94},
        {"trial": 2, "rank": 2, "val_acc_noisy": 0.93},
        {"trial": None, "rank": 3},
    ]
    final = selection.rescore(rows, docs)
    by = {r["trial"]: r for r in final}
    assert set(by) == {6, 1, 2}
    assert by[2]["val_accuracy"] == pytest.approx(0.935) and by[2]["search_val_accuracy"] == 0.925
    assert by[6]["final_val_std"] == pytest.approx(0.0141421, rel=1e-4) and by[1]["final_seeds"] == 2
    assert selection.choose(final, margin=0.01)[0]["trial"] == 2
    assert selection.choose(rows, margin=0.01)[0]["trial"] == 2  # ... the search score alone: 2 too, by area
    assert selection.choose(selection.rescore(rows, docs[:4]), margin=0.05)[0]["trial"] == 6  # smallest within 5


def test_sampled_models_build_and_respect_their_polarity():
    sp = {
        "blocks": [1, 2],
        "convs_per_block": 2,
        "widths": [4, 8],
        "kernel_sizes": [3, 5],
        "hidden": [0, 16],
        "polarity": ["positive", "row_groups", "col_groups"],
        "pools_per_block": [1, 2],
        "input_split": [True, False],
    }
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    seen, shapes = set(), set()
    for _ in range(12):
        t = study.ask()
        mc = space.sample_model(t, sp, {"dropout": 0.0, "bias": True})
        arch = networks.make_arch([9, 32], 6, mc)
        net = networks.build(arch, {"weight_bits": 2, "dac_bits": 4, "adc_bits": 6})
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
    sp = {
        "blocks": [1, 2],
        "convs_per_block": 1,
        "widths": [16, 32, 64],
        "kernel_sizes": [5, 7],
        "hidden": [0, 16],
        "polarity": ["positive", "row_groups"],
        "pools_per_block": [1, 2],
        "input_split": [True, False],
    }
    model = {
        "conv": [32, "M", 64, "M", "M"],
        "kernel_size": [7, 5],
        "input_split": True,
        "hidden": [],
        "polarity": ["positive", "row_groups", "positive"],
    }
    params = space.enqueue_params(model, sp)
    assert params == {
        "width0": 32,
        "kernel0": 7,
        "pools0": 1,
        "width1": 64,
        "kernel1": 5,
        "pools1": 2,
        "blocks": 2,
        "input_split": True,
        "hidden": 0,
        "polarity0": "positive",
        "polarity1": "row_groups",
        "polarity2": "positive",
    }
    # the search rebuilds exactly this network from them
    got = space.sample_model(optuna.trial.FixedTrial(params), sp, {"dropout": 0.0, "bias": True})
    assert got["conv"] == model["conv"] and got["kernel_size"] == [7, 5] and got["input_split"] and got["hidden"] == []
    assert [p["row_groups"] for p in got["polarity"]] == [1, 2, 1]
    for bad, msg in (
        ({"conv": [48, "M"], "kernel_size": 5}, "width 48"),
        ({"conv": [32, 32, "M"], "kernel_size": 5}, "pools per block 0"),
        ({"conv": [32, "M"], "kernel_size": [5, 7]}, "2 entries for 1"),
        ({"conv": [32, "M"], "kernel_size": 5, "polarity": "col_groups"}, "col_groups"),
    ):
        with pytest.raises(ValueError, match=msg):
            space.enqueue_params(bad, sp)
    # the workflow's config loader checks every enqueued entry against its space, naming the key
    raw = config.deep_merge(
        yaml.safe_load((REPO / "config.yaml").read_text()),
        {"nas_unipolar": {"space": {"har": {"enqueue": [{"conv": [48, "M"], "kernel_size": 5}]}}}},
    )
    with pytest.raises(config.ConfigError, match=r"nas_unipolar.space.har.enqueue\[0\]': width 48"):
        load_config(raw)


def test_area_objective_grows_with_width_and_row_groups():
    base = {"conv": [8, "M"], "kernel_size": [5], "hidden": [], "dropout": 0.0, "bias": True}
    args = (
        [9, 128],
        6,
        QuantSettings.from_config("unipolar", 2, CFG["quant"], Chip.from_config(CFG["chip"])),
        MapSettings.from_config(
            CFG["map_crossbar"], Chip.from_config(CFG["chip"]), Pricing.from_config(CFG["estimate_cost"])
        ).for_variant("unipolar"),
        Pricing.from_config(CFG["estimate_cost"]),
    )
    small = space.hardware_of({**base, "polarity": "positive"}, *args)
    wide = space.hardware_of({**base, "conv": [64, "M"], "polarity": "positive"}, *args)
    split = space.hardware_of({**base, "polarity": {"sign": 1, "row_groups": 2}}, *args)
    assert wide["area_um2"] > small["area_um2"] and split["tiles"] > small["tiles"]
    assert split["sign_flips"] > 0 == small["sign_flips"]


def test_median_pruning_rule_is_optunas_best_so_far_against_complete_trials_at_the_same_epoch():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for curve in [[0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.3, 0.8, 0.9], [0.2, 0.1], [0.55, 0.7, 0.4]]:
        study.add_trial(
            optuna.trial.create_trial(
                values=[max(curve), 1.0] if len(curve) == 3 else None,
                user_attrs={"val_acc_curve": curve},
                state=optuna.trial.TrialState.COMPLETE if len(curve) == 3 else optuna.trial.TrialState.PRUNED,
                distributions={},
                params={},
            )
        )
    p = {"enabled": True, "warmup_epochs": 2, "min_trials": 3}
    prune = objective._median_pruner
    assert not prune(study, 99, [0.0], p)  # before warm-up: never
    # epoch 2: median of the complete trials [0.6, 0.5, 0.8, 0.7] = 0.65; the pruned trial's 0.1 does not count
    assert prune(study, 99, [0.2, 0.64], p)
    assert not prune(study, 99, [0.2, 0.66], p)
    # a dip does not prune a trial whose best epoch cleared the bar (Optuna's MedianPruner rule)
    assert not prune(study, 99, [0.7, 0.3], p)
    assert prune(study, 99, [0.1, 0.1, 0.5], p)  # epoch 3: median of [0.7, 0.6, 0.9, 0.4] = 0.65
    assert not prune(study, 99, [0.1, 0.1, 0.5], {**p, "min_trials": 5})  # too few to judge
    assert not prune(study, 99, [0.2, 0.1], {**p, "enabled": False})
