"""tools/compare_results.py: the script that shows a refactoring changed no number."""

import json
import subprocess
import sys

from conftest import REPO

TOOL = REPO / "tools" / "compare_results.py"


def results(root, acc=0.9, wall=1.0, area=100.0, noise_acc="0.8"):
    d = root / "har" / "uniform" / "b2"
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"test_accuracy": acc, "wall_time_s": wall, "mlflow_run_id": str(wall)}))
    (d / "mapping.json").write_text(json.dumps({"total": {"devices": 4096, "tiles": 1}, "layers": [{"adcs": 16}]}))
    (d / "cost.json").write_text(json.dumps({"total": {"area_um2": area}}))
    (d / "noise.csv").write_text(f"prog_sigma,accuracy_mean\n0.0,0.9\n0.02,{noise_acc}\n")
    (root / "tables").mkdir()
    (root / "tables" / "accuracy.csv").write_text(f"dataset,acc,search_wall_time_s\nhar,{acc},{wall}\n")
    return root


def compare(a, b, *extra):
    return subprocess.run([sys.executable, str(TOOL), str(a), str(b), *extra], capture_output=True, text=True)


def test_identical_numbers_pass_whatever_the_run_times(tmp_path):
    r = compare(results(tmp_path / "a", wall=1.0), results(tmp_path / "b", wall=7.5))
    assert r.returncode == 0, r.stdout
    assert "5 files, 5 identical, 0 differ" in r.stdout


def test_a_changed_number_is_named(tmp_path):
    r = compare(results(tmp_path / "a"), results(tmp_path / "b", area=101.0, noise_acc="0.81"))
    assert r.returncode == 1
    assert "DIFF har/uniform/b2/cost.json" in r.stdout and "total.area_um2: 100.0 != 101.0" in r.stdout
    assert "DIFF har/uniform/b2/noise.csv" in r.stdout and "2 differ" in r.stdout
    assert compare(tmp_path / "a", tmp_path / "b", "--tol", "0.05").returncode == 0


def test_a_missing_file_differs(tmp_path):
    a, b = results(tmp_path / "a"), results(tmp_path / "b")
    (b / "har" / "uniform" / "b2" / "cost.json").unlink()
    r = compare(a, b)
    assert r.returncode == 1 and "har/uniform/b2/cost.json: only in before" in r.stdout


def test_a_moved_field_is_compared_by_value_and_a_dropped_one_is_listed(tmp_path):
    a, b = results(tmp_path / "a"), results(tmp_path / "b")
    before, after = a / "har" / "uniform" / "b2" / "mapping.json", b / "har" / "uniform" / "b2" / "mapping.json"
    before.write_text(json.dumps({"converters": {"adc_bits": 6}, "device": {"g_min_us": 1.1}, "total": {"tiles": 1}}))
    after.write_text(json.dumps({"chip": {"adc_bits": 6}, "total": {"tiles": 1}}))
    assert compare(a, b).returncode == 1  # without the renames: a layout change
    renames = ("--rename", "converters=chip", "--rename", "device.g_min_us=-")
    r = compare(a, b, *renames)
    assert r.returncode == 0, r.stdout
    assert "converters -> chip" in r.stdout and "device.g_min_us dropped" in r.stdout
    after.write_text(json.dumps({"chip": {"adc_bits": 7}, "total": {"tiles": 1}}))
    r = compare(a, b, *renames)
    assert r.returncode == 1 and "chip.adc_bits: 6 != 7" in r.stdout
