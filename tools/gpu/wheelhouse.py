"""Fill a folder with the wheels the workflow needs on the GPU box beyond what its python3 already holds.

Run by tools/gpu/make_wheelhouse.sh (see there). Steps:

1. the requirements: snakemake, optuna and jsonschema at requirements.txt's pins, mlflow-skinny at mlflow's pin (the
   full mlflow is ~69 MB of server and model-flavour packages), and what mlflow's sqlite tracking store needs beyond
   skinny (sqlalchemy, alembic, with full mlflow's bounds);
2. pip resolves them for the target (CPython X.Y, manylinux x86-64, binary wheels only) in a dry run, constrained to
   the versions of the project's venv when there is one (the versions the tests pass with);
3. a requirement published only as an sdist (connection_pool) is built here into a pure-Python wheel
   (``pip wheel --no-deps``) and offered to the resolver, which then runs again;
4. the resolved packages that the box already has (tools/gpu/box_packages.txt) or that are left out on purpose
   (EXCLUDE) are dropped; the rest is downloaded with --no-deps: exactly one wheel per package. Wheels in the
   folder that are not in this set are removed.

Prints one line per wheel and the total size.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

#: Beyond requirements.txt: what mlflow's SqlAlchemyStore (sqlite:///.../mlflow.db) imports that mlflow-skinny
#: does not require; the bounds are full mlflow's.
EXTRA = ["sqlalchemy>=1.4.0,<3", "alembic!=1.10.0,<2"]
#: Left out: PuLP (a ~17 MB wheel: it bundles the CBC solver binaries) serves only Snakemake's ILP job scheduler;
#: without it Snakemake uses its greedy scheduler (run_cifar.sh asks for it: --scheduler greedy).
EXCLUDE_DEFAULT = "pulp"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements() -> list[str]:
    """snakemake, optuna, jsonschema as requirements.txt pins them; mlflow -> mlflow-skinny at the same pin."""
    reqs = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = norm(re.split(r"[<>=!~ ;\[]", line, maxsplit=1)[0])
        if name in ("snakemake", "optuna", "jsonschema"):
            reqs[name] = line
        elif name == "mlflow":
            reqs["mlflow-skinny"] = "mlflow-skinny" + line[len("mlflow") :]
    missing = {"snakemake", "optuna", "jsonschema", "mlflow-skinny"} - set(reqs)
    if missing:
        sys.exit(f"wheelhouse: requirements.txt names no {sorted(missing)}")
    return list(reqs.values()) + EXTRA


def box_packages() -> set[str]:
    lines = (HERE / "box_packages.txt").read_text().splitlines()
    return {norm(x.strip()) for x in lines if x.strip() and not x.startswith("#")}


def platform_args(pyver: str) -> list[str]:
    nodot = pyver.replace(".", "")
    plats = [f"manylinux_2_{n}_x86_64" for n in range(39, 4, -1)]
    plats += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    args = ["--only-binary=:all:", "--python-version", pyver, "--implementation", "cp", "--abi", f"cp{nodot}"]
    args += ["--abi", "abi3", "--abi", "none"]
    for p in plats:
        args += ["--platform", p]
    return args


def pip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode:
        sys.exit(f"wheelhouse: failed: {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def constraints(venv: Path | None, tmp: Path) -> list[str]:
    """-c FILE: the project venv's versions (torch and the editable project left out), if there is a venv."""
    if venv is None or not (venv / "bin" / "python").exists():
        return []
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True
    )
    pins = [x for x in r.stdout.splitlines() if "==" in x and norm(x.split("==")[0]) not in ("torch", "nvmxbar")]
    f = tmp / "constraints.txt"
    f.write_text("\n".join(pins) + "\n")
    return ["-c", str(f)]


def resolve(reqs: list[str], plat: list[str], cons: list[str], built: Path, tmp: Path) -> list[dict]:
    """pip's resolution for the target; sdist-only requirements are built into wheels on the way (found by a
    resolution without the constraints, whose error names the requirement that has no wheel)."""

    def dry_run(*extra: str) -> subprocess.CompletedProcess:
        report = tmp / "report.json"
        report.unlink(missing_ok=True)
        args = ["install", "--dry-run", "--ignore-installed", "--report", str(report), "--target", str(tmp / "t")]
        return pip(*args, "--find-links", str(built), *plat, *extra, *reqs, check=False)

    for _ in range(10):
        r = dry_run(*cons)
        if r.returncode == 0:
            return json.loads((tmp / "report.json").read_text())["install"]
        free = dry_run() if cons else r
        m = re.search(r"No matching distribution found for (\S+)", free.stdout + free.stderr)
        if not m:
            sys.exit(f"wheelhouse: pip could not resolve:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        spec = m.group(1)
        print(f"wheelhouse: {spec} has no wheel for the target: building one from its sdist", flush=True)
        pip("wheel", "--no-deps", "--quiet", "--no-binary", ":all:", "-w", str(built), *cons, spec)
        if not any(w.name.endswith("-none-any.whl") for w in built.glob("*.whl")):
            sys.exit(f"wheelhouse: {spec} built into no pure-Python wheel: {[w.name for w in built.iterdir()]}")
    sys.exit("wheelhouse: too many sdist-only requirements")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--python-version", default="3.12")
    ap.add_argument("--venv", type=Path, default=REPO / ".venv", help="versions to prefer (pip freeze)")
    ap.add_argument("--exclude", default=EXCLUDE_DEFAULT, help="comma-separated packages left out on purpose")
    args = ap.parse_args()
    dest = args.dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    box = box_packages()
    exclude = {norm(x) for x in args.exclude.split(",") if x.strip()}
    plat = platform_args(args.python_version)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        built = tmp / "built"
        built.mkdir()
        cons = constraints(args.venv, tmp)
        reqs = requirements()
        print(f"wheelhouse: cp{args.python_version} manylinux x86-64 wheels for {' '.join(reqs)}", flush=True)
        items = resolve(reqs, plat, cons, built, tmp)
        want, skipped = {}, []
        for it in items:
            name, version = norm(it["metadata"]["name"]), it["metadata"]["version"]
            if name in box or name in exclude:
                skipped.append(f"{name}=={version}" + (" (left out)" if name in exclude else ""))
            else:
                want[name] = (version, it["download_info"]["url"])
        print(f"wheelhouse: on the box already or left out: {', '.join(sorted(skipped))}", flush=True)
        # built wheels (file:// URLs) are copied, the rest downloaded (binary only, no deps)
        local = {n: u for n, (_, u) in want.items() if u.startswith("file://")}
        for url in local.values():
            shutil.copy(url[len("file://") :], dest)
        remote = [f"{n}=={v}" for n, (v, u) in want.items() if n not in local]
        if remote:
            pip("download", "--no-deps", "--quiet", "-d", str(dest), *plat, *remote)
    # exactly one wheel per wanted package; nothing else in the folder
    have: dict[str, list[Path]] = {}
    for whl in sorted(dest.glob("*.whl")):
        name, version = whl.name.split("-")[:2]
        if norm(name) in want and want[norm(name)][0] == version:
            have.setdefault(norm(name), []).append(whl)
        else:
            whl.unlink()
    dup = {n: [p.name for p in ps] for n, ps in have.items() if len(ps) > 1}
    missing = sorted(set(want) - set(have))
    if dup or missing:
        sys.exit(f"wheelhouse: duplicate wheels {dup} or missing {missing}")
    total = 0
    for n in sorted(have):
        size = have[n][0].stat().st_size
        total += size
        print(f"  {have[n][0].name:75s} {size / 2**20:6.2f} MiB")
    print(f"wheelhouse: {len(have)} wheels, {total / 2**20:.1f} MiB in {dest}")


if __name__ == "__main__":
    main()
