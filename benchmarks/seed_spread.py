"""How much of an accuracy difference is the seed? Retrain one deployment of a results folder with other seeds.

For results/<dataset>/<variant>[/b<bits>] it takes the recipe the workflow used (config.yaml at the given
profile; for `unipolar` the architecture of nas/arch.json), trains it again with each seed (no MLflow, in a
scratch folder), maps it onto the crossbar and prints the test accuracy as trained and on the ideal crossbar,
then mean, std, min and max over the seeds. Not a test: a measurement (a few minutes per seed on 2 cores).

Run: .venv/bin/python benchmarks/seed_spread.py RESULTS DATASET VARIANT BITS [--seeds 0 1 2] [--profile full]
     [--threads 1] [--jobs 2] [--set quant.adc_tile_rows=128 ...]   (config overrides, YAML values)
     [--no-adc]        also the ideal crossbar without its ADC (what the converters cost)
     [--noise 0.02]    also the mean accuracy over --chips chips at this programming-noise sigma
     [--arch FILE|JSON] unipolar: another architecture, an arch.json file or model keys merged over the
                       results' nas/arch.json, e.g. --arch '{"conv": [32, "M", 64, "M", "M"]}'
e.g. .venv/bin/python benchmarks/seed_spread.py results har unipolar 2 --seeds 0 1 2 3 4
     .venv/bin/python benchmarks/seed_spread.py results har unipolar 2 --set train.har.distill.alpha=0.5
     (distillation: the teacher is results/<dataset>/baseline/model.pt)
"""

import argparse
import json
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def one(seed: int, a: argparse.Namespace) -> dict:
    import torch
    import yaml

    from nvmxbar import config
    from nvmxbar.core import noise
    from nvmxbar.core.schemes import map_network
    from nvmxbar.core.simulator import Simulator
    from nvmxbar.data.arrays import network_inputs
    from nvmxbar.settings import MapSettings, MonteCarlo, NoiseModel, QuantSettings, Recipe, quant_for
    from nvmxbar.stages import train
    from nvmxbar.training.model_io import load_model

    over: dict = {}
    for item in a.set:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = over
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    cfg = config.load(ROOT / "config.yaml", {**over, "profile": a.profile})
    res, ds = Path(a.results), a.dataset
    bits = None if a.variant == "baseline" else a.bits
    arch = res / ds / a.variant / f"b{bits}" / "nas" / "arch.json" if a.variant == "unipolar" else None
    out = Path(tempfile.mkdtemp(prefix=f"seed{seed}-"))
    if arch is not None and a.arch:
        arch = Path(a.arch) if Path(a.arch).is_file() else _merged_arch(arch, a.arch, out / "arch.json")
    quant = QuantSettings.from_config(a.variant, bits, quant_for(cfg["quant"], a.variant, bits), cfg["map_crossbar"])
    m = train.run(
        data_npz=res / "data" / f"{ds}.npz",
        data_json=res / "data" / f"{ds}.json",
        out_model=out / "model.pt",
        out_metrics=out / "metrics.json",
        dataset=ds,
        variant=a.variant,
        bits=bits,
        seed=seed,
        model_cfg=cfg["model"][ds],
        recipe=Recipe.from_config(cfg["train"][ds]),
        quant=quant,
        threads=a.threads,
        accelerator="cpu",
        arch_json=arch,
        teacher=res / ds / "baseline" / "model.pt" if cfg["train"][ds]["distill"]["alpha"] else None,
    )
    row = {"seed": seed, "val": m["val_accuracy"], "test": m["test_accuracy"], "xbar": float("nan")}
    if bits is not None:
        torch.set_num_threads(a.threads)
        net, _ = load_model(out / "model.pt")
        ms = MapSettings.from_config(cfg["map_crossbar"], cfg["quant"])
        x, _ = network_inputs(res / "data" / f"{ds}.npz", "train", ms.calibration_samples)
        arrays, mapping = map_network(net, bits, ms, calib_x=x)
        xt, yt = network_inputs(res / "data" / f"{ds}.npz", "test")
        sim = Simulator(arrays, mapping)
        row["xbar"] = noise.ideal_accuracy(sim, xt, yt)
        if a.no_adc:
            row["no_adc"] = noise.ideal_accuracy(sim, xt, yt, adc=False)
        if a.noise:
            full = MonteCarlo.from_config(cfg["evaluate_noise"])
            mc = MonteCarlo(
                a.chips,
                None,
                full.batch_size,
                full.instance_chunk,
                (NoiseModel.programming(a.noise, full.models[0].drift),),
            )
            row["noisy"] = noise.evaluate(sim, xt, yt, mc, seed=seed, progress=False)[0]["accuracy_mean"]
    return row


def _merged_arch(arch_json: Path, model_keys: str, out: Path) -> Path:
    doc = json.loads(arch_json.read_text())
    doc["model"].update(json.loads(model_keys))
    out.write_text(json.dumps(doc))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results"), p.add_argument("dataset"), p.add_argument("variant")
    p.add_argument("bits", type=int)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--profile", default="full")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. quant.adc_tile_rows=128"
    )
    p.add_argument("--no-adc", action="store_true", help="also the ideal crossbar without its ADC")
    p.add_argument(
        "--noise", type=float, default=0.0, metavar="SIGMA", help="also the mean accuracy at this prog_sigma"
    )
    p.add_argument("--chips", type=int, default=10, help="chips per seed for --noise")
    p.add_argument(
        "--arch", default="", help="unipolar: an arch.json file, or JSON model keys merged over nas/arch.json"
    )
    a = p.parse_args()
    if a.arch and a.variant != "unipolar":
        p.error(f"--arch replaces a unipolar arch.json; for {a.variant} use --set model.{a.dataset}.<key>=<value>")
    with ProcessPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(one, a.seeds, [a] * len(a.seeds)))
    print(
        f"{a.dataset}/{a.variant}/b{a.bits}, profile {a.profile}{', ' + ' '.join(a.set) if a.set else ''}"
        f"{', arch ' + a.arch if a.arch else ''}: "
        f"accuracy per seed (test split)"
    )
    cols = [("test", "trained"), ("xbar", "ideal xbar")]
    cols += [("no_adc", "xbar no ADC")] if a.no_adc else []
    cols += [("noisy", f"sigma {a.noise:g}")] if a.noise else []
    print(f"{'seed':>5}{'val':>9}" + "".join(f"{name:>13}" for _, name in cols))
    for r in rows:
        print(f"{r['seed']:>5}{r['val']:>9.4f}" + "".join(f"{r.get(k, float('nan')):>13.4f}" for k, _ in cols))
    for k, name in cols:
        v = [r.get(k, float("nan")) for r in rows]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        print(
            f"{name:>11}: mean {statistics.mean(v):.4f}  std {sd:.4f}  min {min(v):.4f}  max {max(v):.4f}  (n={len(v)})"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
