"""The CIFAR-10 work plan: trainings counted from the resolved config, their CPU time from measured throughput,
and what the workflow does with CIFAR-10 without a GPU (config cifar10_on_cpu)."""

import pytest
from conftest import REPO

from nvmxbar import config, workplan
from nvmxbar.workplan import CPU_IMAGES_PER_S_PER_CORE as RATE

FLOAT, QUANT, UNIPOLAR = RATE["float"], RATE["quantized"], RATE["unipolar"]


def load(**over):
    return config.load(REPO / "config.yaml", over)


def test_throughput_is_the_benchmark_figure_per_core():
    """661, 192 and 130 img/s measured on 2 threads (docs/FINDINGS.md), one core per training."""
    assert (FLOAT, QUANT, UNIPOLAR) == (330.5, 96.0, 65.0)


def test_one_float_training_of_the_full_split():
    cfg = load(variants=["baseline"], seeds=[0])
    assert workplan.cifar10_images(cfg) == 45_000  # 50,000 less val_fraction 0.1
    total, parts = workplan.cifar10_cpu_estimate(cfg, 1)
    assert parts == {"baseline": pytest.approx(45_000 * 30 / FLOAT)}  # 4085 s: 30 epochs, no search
    assert total == pytest.approx(4084.72, abs=0.01)
    assert workplan.cifar10_cpu_estimate(cfg, 4)[0] == pytest.approx(total / 4)  # trainings side by side


def test_search_and_finalists_are_counted_per_bits():
    cfg = load(variants=["unipolar"], seeds=[0, 1], device_bits=[2, 4])
    total, parts = workplan.cifar10_cpu_estimate(cfg, 1)
    assert parts["unipolar"] == pytest.approx(2 * 2 * 30 * 45_000 / UNIPOLAR)  # bits x seeds x epochs x images
    assert parts["search"] == pytest.approx(2 * 20 * 8 * 45_000 / UNIPOLAR)  # bits x trials x nas epochs
    assert parts["finalists"] == pytest.approx(2 * 4 * 2 * 30 * 45_000 / UNIPOLAR)  # bits x count x seeds
    assert total == pytest.approx(sum(parts.values()))
    assert set(workplan.cifar10_cpu_estimate(load(variants=["uniform"]), 1)[1]) == {"quantized"}  # no search
    no_search = load(variants=["unipolar"], nas_unipolar={"search": False})
    assert set(workplan.cifar10_cpu_estimate(no_search, 1)[1]) == {"unipolar"}
    shorter = load(variants=["unipolar"], nas_unipolar={"finalists": {"epochs": 10}})
    assert workplan.cifar10_cpu_estimate(shorter, 1)[1]["finalists"] == pytest.approx(
        workplan.cifar10_cpu_estimate(load(variants=["unipolar"]), 1)[1]["finalists"] / 3
    )


def test_the_full_default_run_is_days_on_two_cores():
    total, parts = workplan.cifar10_cpu_estimate(load(), 2)
    assert list(parts) == ["baseline", "quantized", "unipolar", "search", "finalists"]
    # 5 seeds: baseline 5, perlayer/uniform/signed 30 and unipolar 10 trainings; 2 x 20 trials; 2 x 4 x 2 finalists
    passes = {
        "float": 5 * 30 * 45_000,
        "quantized": 30 * 30 * 45_000,
        "unipolar": (10 * 30 + 40 * 8 + 16 * 30) * 45_000,
    }
    assert total == pytest.approx(sum(n / RATE[k] for k, n in passes.items()) / 2)
    assert 160 * 3600 < total < 175 * 3600  # 167 h
    assert workplan.hours(total) == "167 h (7.0 days)"


def test_the_split_and_its_limit_set_the_images():
    assert workplan.cifar10_images(load(prepare_data={"cifar10": {"limit": {"train": 1000}}})) == 1000
    assert workplan.cifar10_images(load(prepare_data={"cifar10": {"val_fraction": 0.2}})) == 40_000
    assert workplan.cifar10_images(load(), "train+val") == 50_000  # fit_on: train+val
    base = workplan.cifar10_cpu_estimate(load(), 1)[0]
    limited = workplan.cifar10_cpu_estimate(load(prepare_data={"cifar10": {"limit": {"train": 4500}}}), 1)[0]
    assert limited == pytest.approx(base / 10)


def test_smoke_profile_is_minutes():
    total, _ = workplan.cifar10_cpu_estimate(load(profile="smoke"), 1)
    assert 0 < total < 300  # 400 images, 1-2 epochs, one seed, 2-bit only


def test_plan_without_a_gpu_skips_cifar10_and_says_how_to_run_it():
    cfg = load()
    assert cfg["cifar10_on_cpu"] == "skip"  # the default
    plan = workplan.cifar10_plan(cfg, 2, cuda_available=False)
    assert not plan.run
    assert "about 167 h (7.0 days) on 2 CPU cores" in plan.message
    assert "--profile workflow/profiles/gpu" in plan.message and "--config cifar10_on_cpu=run" in plan.message
    assert plan.note.startswith("CIFAR-10 was not run: no GPU (estimated 167 h of training on this CPU with 2 cores)")
    ran = workplan.cifar10_plan(load(cifar10_on_cpu="run"), 8, cuda_available=False)
    assert ran.run and ran.note is None and "about 42 h" in ran.message and "8 CPU cores" in ran.message
    cpu = workplan.cifar10_plan(load(train={"accelerator": "cpu"}), 2, cuda_available=True)
    assert not cpu.run and "train.accelerator is cpu" in cpu.message


@pytest.mark.parametrize(
    "over, cuda",
    [
        ({}, True),  # accelerator auto finds the GPU
        ({"train": {"accelerator": "gpu"}}, False),  # a cluster's submit host without the nodes' GPU
        ({"profile": "smoke"}, False),  # minutes
        ({"datasets": ["har"]}, False),
    ],
)
def test_plan_runs_quietly_with_a_gpu_in_smoke_or_without_cifar10(over, cuda):
    plan = workplan.cifar10_plan(load(**over), 2, cuda_available=cuda)
    assert plan.run and plan.message is None and plan.note is None


def test_job_runtimes_follow_the_work():
    cfg = load()
    minutes = {job: workplan.cifar10_job_minutes(cfg, job) for job in ("baseline", "uniform", "unipolar")}
    assert minutes["baseline"] == 137  # 2 x 4085 s
    assert minutes["baseline"] < minutes["uniform"] < minutes["unipolar"]
    search = workplan.cifar10_job_minutes(cfg, "search")  # one worker: 10 of the 20 trials, 8 epochs each
    assert search == pytest.approx(2 * 10 * 8 * 45_000 / UNIPOLAR / 60, abs=1)
    assert workplan.cifar10_job_minutes(load(profile="smoke"), "unipolar") == 10  # the floor


def test_a_limited_full_run_is_reported_as_reduced():
    """workflow/profiles/cifar10-cpu: REPORT.md must not call a subset run paper-scale."""
    import yaml

    reduced = yaml.safe_load((REPO / "workflow/profiles/cifar10-cpu/reduced.yaml").read_text())
    notes = workplan.reduced_datasets(load(**reduced))
    assert list(notes) == ["cifar10"]
    assert "10,000/2,000/2,000 samples, 2 epochs" in notes["cifar10"] and "not paper-scale" in notes["cifar10"]
    assert workplan.reduced_datasets(load()) == {}  # the full profile as configured
    assert workplan.reduced_datasets(load(profile="smoke")) == {}  # REPORT.md says what smoke is
    half = workplan.reduced_datasets(load(prepare_data={"har": {"limit": {"test": 100}}}))
    assert list(half) == ["har"] and "all/all/100 samples" in half["har"]
