"""Config ``nas_unipolar.storage``: the journal file (default) or a PostgreSQL database shared by search workers on
several machines. The database path itself runs against a real server in tests/cluster/test_search_distributed.py;
here: the key, its validation, the recorded pointer, password hygiene, and a clear stop on an unreachable database."""

import contextlib
import os
import socket
import stat
import time
from pathlib import Path

import optuna
import pytest

from nvmxbar import config
from nvmxbar.search import storage
from nvmxbar.stages import nas_unipolar_search

REPO = Path(__file__).resolve().parents[2]
URL = "postgresql://alice:s3cret@db.example.org:5432/studies"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket closes


def with_storage(value):
    raw = config.load(REPO / "config.yaml")
    raw["nas_unipolar"]["storage"] = value
    return config.validate(raw)


def test_the_default_is_the_journal_file():
    assert config.load(REPO / "config.yaml")["nas_unipolar"]["storage"] == "journal"
    raw = config.load(REPO / "config.yaml")
    del raw["nas_unipolar"]["storage"]
    assert config.validate(raw)["nas_unipolar"]["storage"] == "journal"  # the schema's default


@pytest.mark.parametrize("url", [URL, "postgresql+psycopg2://bob@10.0.0.5/optuna", "postgresql:///studies"])
def test_postgresql_urls_are_accepted(url):
    assert with_storage(url)["nas_unipolar"]["storage"] == url


@pytest.mark.parametrize("bad", ["journl", "mysql://u@h/db", "sqlite:///study.db", "", "postgresql:/x"])
def test_anything_else_is_refused_naming_the_key(bad):
    with pytest.raises(config.ConfigError, match=r"nas_unipolar\.storage"):
        with_storage(bad)


def test_masked_hides_the_password():
    assert storage.masked(URL) == "postgresql://alice:***@db.example.org:5432/studies"
    assert storage.masked("postgresql://bob@h/db") == "postgresql://bob@h/db"
    assert storage.masked("journal") == "journal" and storage.masked(None) == "journal"


def test_journal_storage_and_the_recorded_pointer(tmp_path):
    nas = tmp_path / "nas"
    assert isinstance(storage.storage(nas), optuna.storages.JournalStorage)  # nothing recorded: the journal
    assert storage.recorded(nas) == "journal" and storage.describe(nas) == str(nas / storage.STUDY_FILE)
    storage.record(nas, "journal")
    assert isinstance(storage.storage(nas), optuna.storages.JournalStorage)
    storage.record(nas, URL)
    assert storage.recorded(nas) == URL  # what the finalists and the selection open, as configured
    assert storage.describe(nas) == "postgresql://alice:***@db.example.org:5432/studies"
    mode = stat.S_IMODE(os.stat(nas / storage.POINTER_FILE).st_mode)
    assert mode == 0o600  # it may hold a password
    assert not list(nas.glob(".storage.json.*"))  # no temporary file left


def test_a_study_in_the_journal_behaves_as_before(tmp_path):
    st = storage.storage(tmp_path)
    study = optuna.create_study(study_name="s", storage=st, directions=["maximize", "minimize"])
    held = []

    @contextlib.contextmanager
    def lock():
        held.append(True)
        yield

    mine = storage.run_trials(study, lambda t: (t.suggest_float("x", 0, 1), 1.0), 3, 0, lock)
    assert mine == [0, 1, 2] and len(held) == 4  # 3 asks and the check that stops, each under the lock
    assert storage.run_trials(study, lambda t: (0.0, 0.0), 3, 1, tmp_path / "ask.lock") == []  # a lock file's path
    assert (tmp_path / storage.STUDY_FILE).exists()


def test_other_databases_are_refused_naming_the_key(tmp_path):
    with pytest.raises(storage.StorageError, match=r"nas_unipolar\.storage: .*sqlite.*PostgreSQL"):
        storage.open_storage(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    assert not (tmp_path / "x.db").exists()


def test_an_unreachable_database_stops_with_the_key_and_no_password(tmp_path):
    url = f"postgresql://alice:s3cret@127.0.0.1:{closed_port()}/studies"
    t0 = time.time()
    with pytest.raises(storage.StorageError) as e:
        storage.open_storage(url, tmp_path)
    msg = str(e.value)
    assert msg.startswith("nas_unipolar.storage: cannot use the study database postgresql://alice:***@127.0.0.1:")
    assert "Connection refused" in msg and "s3cret" not in msg
    assert time.time() - t0 < storage.CONNECT_TIMEOUT_S  # refused at once, not waited for


def test_the_search_stops_before_training_on_an_unreachable_database(tmp_path):
    url = f"postgresql://alice:s3cret@127.0.0.1:{closed_port()}/studies"
    cfg = {"trials": 2, "epochs": 1, "storage": url}
    with pytest.raises(storage.StorageError, match=r"^nas_unipolar\.storage: cannot use the study database"):
        nas_unipolar_search.run(
            data_npz=tmp_path / "absent.npz",  # training would fail on this instead
            nas_dir=tmp_path / "nas",
            out_json=tmp_path / "nas" / "worker0.json",
            dataset="har",
            bits=2,
            worker=0,
            cfg=cfg,
            model_base={},
            recipe=None,
            quant=None,
            ms=None,
            pricing=None,
            score=None,
            seed=0,
        )
    assert not (tmp_path / "nas" / "worker0.json").exists() and not (tmp_path / "nas" / "storage.json").exists()


def test_advisory_lock_keys_are_stable_signed_64_bit():
    k = storage.lock_key("nvmxbar: optuna study har-unipolar-b2-abc")
    assert k == storage.lock_key("nvmxbar: optuna study har-unipolar-b2-abc")
    assert -(2**63) <= k < 2**63 and k != storage.lock_key("nvmxbar: optuna study har-unipolar-b4-abc")
