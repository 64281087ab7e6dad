"""A one-node SLURM cluster for tests: munged, slurmctld and slurmd started as root from a temp folder.

`start_cluster(folder)` installs the Debian packages when they are missing (only as root), writes a munge key and
a slurm.conf (proctrack/linuxproc, task/none, select/cons_tres, one node with 2 CPUs, a default partition `debug`),
starts the three daemons, waits for `sinfo` to show the node idle and returns a `Cluster` whose `stop()` shuts
down what it started (`scontrol shutdown`, then each daemon by its pid). It raises `SlurmUnavailable` with the
reason when SLURM cannot be started; the tests skip on it (never pass).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel", "scontrol")


class SlurmUnavailable(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)


def ensure_installed() -> None:
    missing = [b for b in BINARIES if _which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"SLURM is not installed ({', '.join(missing)} missing) and we are not root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SlurmUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: {out.stderr.strip()[-300:]}")
    missing = [b for b in BINARIES if _which(b) is None]
    if missing:
        raise SlurmUnavailable(f"{', '.join(missing)} still missing after apt-get install")


@dataclass
class Cluster:
    folder: Path
    conf: Path
    node: str
    procs: list = field(default_factory=list)   # (name, pid)

    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), env=self.env(), capture_output=True, text=True, **kw)

    def stop(self) -> None:
        try:
            self.run("scancel", "-u", "root", timeout=20)
            self.run("scontrol", "shutdown", timeout=20)
        except (OSError, subprocess.SubprocessError):
            pass
        deadline = time.monotonic() + 10
        for name, pid in reversed(self.procs):
            _wait_then_signal(pid, deadline, signal.SIGTERM, 0.2)
        for name, pid in self.procs:
            _wait_then_signal(pid, time.monotonic() + 5, signal.SIGKILL, 0.1)
        self.procs.clear()

    def log_tail(self) -> str:
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            p = self.folder / name
            if p.exists():
                out.append(f"--- {name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _pid_from(path: Path, timeout: float = 15) -> int | None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            time.sleep(0.1)
    return None


def start_cluster(folder: Path, cpus: int = 2) -> Cluster:
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting slurmctld/slurmd/munged for the test needs root")
    ensure_installed()
    folder = Path(folder)
    (folder / "state").mkdir(parents=True, exist_ok=True)
    (folder / "spool").mkdir(parents=True, exist_ok=True)
    node = socket.gethostname().split(".")[0]
    # munge: our own key, socket and daemon
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    os.chmod(folder, 0o755)
    sock = folder / "munge.socket"
    munged = _which("munged")
    out = subprocess.run([munged, "--force", f"--key-file={key}", f"--socket={sock}",
                          f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
                          f"--seed-file={folder / 'munged.seed'}"], capture_output=True, text=True)
    if out.returncode != 0:
        raise SlurmUnavailable(f"munged did not start: {(out.stderr or out.stdout).strip()[-300:]}")
    cluster = Cluster(folder, folder / "slurm.conf", node)
    pid = _pid_from(folder / "munged.pid")
    if pid:
        cluster.procs.append(("munged", pid))
    ctl_port, d_port = _free_port(), _free_port()
    cluster.conf.write_text(f"""\
ClusterName=orglabtest
SlurmctldHost={node}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctl_port}
SlurmdPort={d_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={folder / 'state'}
SlurmdSpoolDir={folder / 'spool'}
SlurmctldPidFile={folder / 'slurmctld.pid'}
SlurmdPidFile={folder / 'slurmd.pid'}
SlurmctldLogFile={folder / 'slurmctld.log'}
SlurmdLogFile={folder / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=30
KillWait=5
NodeName={node} CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    env = cluster.env()
    try:
        for name, args, pidfile in (("slurmctld", ["-i"], "slurmctld.pid"), ("slurmd", [], "slurmd.pid")):
            out = subprocess.run([_which(name), "-f", str(cluster.conf), *args], env=env, capture_output=True,
                                 text=True)
            pid = _pid_from(folder / pidfile)
            if out.returncode != 0 or pid is None:
                raise SlurmUnavailable(f"{name} did not start: {(out.stderr or out.stdout).strip()[-300:]}\n"
                                       + cluster.log_tail())
            cluster.procs.append((name, pid))
        end, state = time.monotonic() + 60, ""
        while time.monotonic() < end:
            state = cluster.run("sinfo", "-h", "-N", "-o", "%t").stdout.strip()
            if state == "idle":
                return cluster
            time.sleep(0.5)
        raise SlurmUnavailable(f"the node never became idle in sinfo (state '{state}')\n" + cluster.log_tail())
    except BaseException:
        cluster.stop()
        raise


def _wait_then_signal(pid: int, deadline: float, sig: int, poll_s: float) -> None:
    """Wait for `pid` to exit until `deadline` (time.monotonic()), then send it `sig` if it is still alive."""
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(poll_s)
    if _alive(pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
