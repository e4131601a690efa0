"""Print the address of each MLflow experiment's runs table, one line per experiment (``make ui`` runs it).

The MLflow 3 UI opens an experiment on its GenAI overview (traces, an assistant panel) whatever the experiment's
kind tag says (the choice is kept in the browser: mlflow/mlflow issue 24498). Its hash route
``#/experiments/<id>/runs`` (the route ``experimentPageTabRuns`` of the UI bundle, MLflow 3.x) opens the runs
table directly.

    python tools/ui_urls.py --store sqlite:///$PWD/results/mlflow.db --base http://127.0.0.1:5055
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def runs_table_url(base: str, experiment_id: str) -> str:
    """The UI address that opens experiment ``experiment_id``'s runs table."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs"


def lines(store: str, base: str) -> list[str]:
    """``<experiment name>  <runs-table address>`` for each active experiment of tracking store ``store``, by name;
    MLflow's empty ``Default`` experiment is left out. Raises FileNotFoundError for a sqlite store that does not
    exist (opening it would create it)."""
    if store.startswith("sqlite:///"):
        db = Path(store.removeprefix("sqlite:///").split("?", 1)[0])
        if not db.is_file():
            raise FileNotFoundError(f"no MLflow store at {db}: run the workflow first (make run)")
    import mlflow  # after the check: opening a sqlite store creates it

    c = mlflow.MlflowClient(store)
    out = []
    for exp in sorted(c.search_experiments(), key=lambda e: e.name):
        if exp.name == "Default" and not c.search_runs([exp.experiment_id], max_results=1):
            continue
        out.append(f"{exp.name}  {runs_table_url(base, exp.experiment_id)}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="the tracking URI, e.g. sqlite:////abs/path/results/mlflow.db")
    ap.add_argument("--base", required=True, help="the UI's address, e.g. http://127.0.0.1:5055")
    args = ap.parse_args(argv)
    try:
        found = lines(args.store, args.base)
    except FileNotFoundError as e:
        print(f"ui_urls: {e}", file=sys.stderr)
        return 1
    print("The runs table of each experiment (the UI's own landing page is the GenAI overview):")
    print("\n".join(f"  {line}" for line in found) if found else "  (no experiments yet: run the workflow first)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
