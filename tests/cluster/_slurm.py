"""A real single-node SLURM cluster on this machine, for the tests (tools/cluster/install_slurm.sh installs it).

One temporary folder holds slurm.conf (one node, `localhost`, with this machine's CPUs and memory as `slurmd -C`
reports them; one default partition `cpu`; no cgroups: proctrack/linuxproc, task/none), the state, spool and log
files, SLURM's job completion log (jobcomp/filetxt: one line per finished job with its state and exit code) and a
fresh MUNGE key. There is no accounting database (slurmdbd): jobs are followed with `squeue`/`scontrol`, which keep
a finished job for MinJobAge (an hour here). The daemons run in the foreground as children of the test process,
on free ports; `SLURM_CONF` in :attr:`SlurmCluster.env` points the client commands (sbatch, squeue, ...) at it.

Two things live outside the folder, because SLURM looks for them there: slurmd runs configless (it fetches
slurm.conf from slurmctld and links it as /run/slurm/conf, where an `srun` finds it that has no SLURM_CONF: the
SLURM executor's job step removes every SLURM_* variable but the job's ids before its `srun`), and so munged listens
on MUNGE's default socket /run/munge/munge.socket.2 (slurmd authenticates its config request before it has a
config). A munged already answering there is used as it is. Both are removed again at the end. A daemon that does
not come up fails the test with its log tail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import wait_until

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel", "munge", "unmunge", "mungekey")
INSTALL = "tools/cluster/install_slurm.sh"
PARTITION = "cpu"
NODE = "localhost"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")  # MUNGE's default: what slurmd uses before it has a config
CONFIGLESS_LINK = Path("/run/slurm/conf")  # slurmd's link to the config it fetched


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 30) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(lines[-n:]) or f"({path} is empty)"


def _munge_answers() -> bool:
    """Whether a munged on the default socket encodes and decodes a credential."""
    if not MUNGE_SOCKET.exists():
        return False
    r = subprocess.run(
        f"{_which('munge')} -n -S {MUNGE_SOCKET} | {_which('unmunge')} -S {MUNGE_SOCKET}",
        shell=True,
        capture_output=True,
        timeout=10,
    )
    return r.returncode == 0


def parse_fields(line: str) -> dict[str, str]:
    """'A=1 B=x y C=2' -> {'A': '1', 'B': 'x y', 'C': '2'}: the key=value lines of `scontrol show job -o` and of the
    job completion log (a value may hold spaces, e.g. Comment or WorkDir)."""
    out: dict[str, str] = {}
    key = None
    for token in line.split(" "):
        name, sep, value = token.partition("=")
        if sep and name[:1].isupper() and name.replace("_", "").replace(":", "").isalnum():
            key = name
            out[key] = value
        elif key is not None:
            out[key] += " " + token
    return {k: v.strip() for k, v in out.items()}


def node_hardware() -> dict[str, str]:
    """This machine as slurmd sees it (`slurmd -C`): CPUs, Boards, SocketsPerBoard, CoresPerSocket, ThreadsPerCore,
    RealMemory. A node line that claims more than slurmd finds would drain the node."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    hw = parse_fields(out.splitlines()[0])
    hw.pop("NodeName", None)
    return hw


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    env: dict[str, str]
    jobcomp: Path
    logs: dict[str, Path]
    ctld_port: int
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: the folders under /run that munged and slurmd create when absent, removed again at the end if so and empty
    made: list[Path] = field(default_factory=list)

    def run(self, *args: str, timeout: int = 30, check: bool = True) -> subprocess.CompletedProcess:
        """A client command (sinfo, squeue, scontrol, ...) against this cluster."""
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return r

    def jobs(self) -> dict[str, dict[str, str]]:
        """Every job slurmctld holds (`scontrol show job -o`; a finished one for MinJobAge): id -> its fields
        (JobName, JobState, ExitCode, Comment, Partition, NumCPUs, TRES, Command, WorkDir, ...)."""
        out = self.run("scontrol", "show", "job", "-o").stdout
        return {f["JobId"]: f for f in map(parse_fields, out.splitlines()) if "JobId" in f}

    def completions(self) -> dict[str, dict[str, str]]:
        """SLURM's job completion log (jobcomp/filetxt): job id -> its fields (JobState, ExitCode, Partition, ...)."""
        if not self.jobcomp.exists():
            return {}
        return {f["JobId"]: f for f in map(parse_fields, self.jobcomp.read_text().splitlines()) if "JobId" in f}

    def diagnose(self) -> str:
        """The daemons' log tails, for a failure message."""
        parts = [f"--- {name} ({path}):\n{_tail(path)}" for name, path in self.logs.items()]
        parts += [f"--- {p.name}:\n{_tail(p, 15)}" for p in sorted(self.root.glob("*.stdout"))]
        return "\n".join(parts)

    def start(self, timeout: float = 60) -> None:
        self.made = [d for d in (MUNGE_SOCKET.parent, CONFIGLESS_LINK.parent) if not d.exists()]
        if _munge_answers():
            self.logs.pop("munged")  # someone's munged (the system's): used as it is
        else:
            key = self.root / "munge" / "munge.key"
            subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
            MUNGE_SOCKET.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            self._start(
                "munged",
                [
                    _which("munged"),
                    "--foreground",
                    "--force",  # as root; a stale socket of a killed munged is taken over
                    f"--key-file={key}",
                    f"--socket={MUNGE_SOCKET}",
                    f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                    f"--log-file={self.logs['munged']}",
                    f"--seed-file={self.root / 'munge' / 'munged.seed'}",
                ],
            )
            self._wait("munged", _munge_answers, timeout)
        self._start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: "UP" in self.run("scontrol", "ping", check=False).stdout, timeout)
        # configless: slurmd fetches slurm.conf from slurmctld (SlurmctldParameters=enable_configless)
        args = [_which("slurmd"), "-D", "-N", NODE, "--conf-server", f"{NODE}:{self.ctld_port}"]
        self._start("slurmd", args, slurm_conf=False)
        self._wait("slurmd", lambda: self.node_state() == "idle", timeout)

    def node_state(self) -> str:
        r = self.run("sinfo", "-h", "-N", "-n", NODE, "-o", "%t", check=False)
        return r.stdout.strip() if r.returncode == 0 else f"(sinfo failed: {r.stderr.strip()})"

    def _start(self, name: str, args: list[str], slurm_conf: bool = True) -> None:
        env = self.env if slurm_conf else {k: v for k, v in self.env.items() if k != "SLURM_CONF"}
        with open(self.root / f"{name}.stdout", "w") as out:
            self.procs[name] = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            proc = self.procs[name]
            if proc.poll() is not None:
                pytest.fail(
                    f"{name} exited with status {proc.returncode} at start-up (SLURM test cluster in {self.root})."
                    f"\n{self.diagnose()}",
                    pytrace=False,
                )
            try:
                if ready():
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.3)
        extra = f" (sinfo: node {NODE} is {self.node_state()})" if name == "slurmd" else ""
        pytest.fail(
            f"{name} did not come up within {timeout:.0f} s{extra} (SLURM test cluster in {self.root}).\n"
            f"{self.diagnose()}",
            pytrace=False,
        )

    def stop(self) -> None:
        """Cancel what is left, stop the daemons we started (slurmd, slurmctld, munged: SIGTERM, then SIGKILL) and
        remove slurmd's /run/slurm/conf link (and /run/slurm, /run/munge when they were made for this cluster)."""
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            self.run("scancel", "--user", str(os.getuid()), check=False)
            wait_until(lambda: not self.run("squeue", "-h", "-t", "PD,R,CG", check=False).stdout.strip(), 30)
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if CONFIGLESS_LINK.is_symlink() and str(self.root) in os.readlink(CONFIGLESS_LINK):
            CONFIGLESS_LINK.unlink()
        for folder in self.made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def write_conf(root: Path, hw: dict[str, str], ctld_port: int) -> tuple[Path, Path, dict[str, Path]]:
    """slurm.conf of the one-node cluster in root; returns (conf, job completion log, daemon logs)."""
    for sub in ("state", "spool", "log", "munge"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)
    logs = {name: root / "log" / f"{name}.log" for name in DAEMONS}
    jobcomp = root / "log" / "jobcomp.txt"
    node = " ".join(f"{k}={v}" for k, v in hw.items())
    conf = root / "slurm.conf"
    conf.write_text(
        f"""# nvmxbar tests: a single-node SLURM cluster (tests/cluster/_slurm.py)
ClusterName=nvmxbar-test
SlurmctldHost={NODE}
SlurmctldPort={ctld_port}
SlurmdPort={_free_port()}
SlurmctldParameters=enable_configless
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={root / "state"}
SlurmdSpoolDir={root / "spool"}
SlurmctldPidFile={root / "slurmctld.pid"}
SlurmdPidFile={root / "slurmd.pid"}
SlurmctldLogFile={logs["slurmctld"]}
SlurmdLogFile={logs["slurmd"]}
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# no accounting database: SLURM's record of every finished job is the completion log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={jobcomp}
MinJobAge=3600
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdTimeout=120
InactiveLimit=0
KillWait=5
Waittime=0
NodeName={NODE} NodeAddr=127.0.0.1 {node} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""
    )
    return conf, jobcomp, logs


def start_cluster(root: Path) -> SlurmCluster:
    """Start munged (unless one answers on the default socket), slurmctld and slurmd; wait for the node to be idle."""
    missing = [n for n in DAEMONS + CLIENTS if _which(n) is None]
    if missing:
        pytest.fail(f"SLURM/MUNGE is not installed (no {', '.join(missing)}): run {INSTALL} as root", pytrace=False)
    ctld_port = _free_port()
    conf, jobcomp, logs = write_conf(root, node_hardware(), ctld_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_"))}
    env["SLURM_CONF"] = str(conf)  # this cluster's, not a surrounding allocation's
    cluster = SlurmCluster(root=root, conf=conf, env=env, jobcomp=jobcomp, logs=logs, ctld_port=ctld_port)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running single-node SLURM cluster (partition `cpu`, the default), stopped at the end of the session."""
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()
