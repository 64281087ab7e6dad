"""Every on-disk location orglab uses, built in one place.

Writers and readers both call these helpers, so a file name is spelled exactly once.
Layout under ORGLAB_HOME (default ~/.orglab):

    registry.sqlite                                   the registry (orglab.registry)
    registry.sqlite.writelock                         its writers' lock, on network filesystems only
    executor/<sweep>-<hash>/<wave>/                   a cluster sweep's tasks: results, logs, private registries
    bases/<name>/                                     model folders orglab made from a GGUF file (orglab.bases)
    cache/gguf/                                       GGUF files assembled from packages while they are converted
    artifacts/<subject>/<run-kind>/<config-hash>/     everything a run wrote (tensors, tables, plots)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from orglab.errors import OrglabError

REGISTRY_FILE = "registry.sqlite"
# The registry file of an executor task (orglab.task_registry): set in the task's process only, so that everything
# the task registers goes to its own file and the shared registry is never opened for writing from another machine.
TASK_REGISTRY_ENV = "ORGLAB_TASK_REGISTRY"


def orglab_home(create: bool = True) -> Path:
    """ORGLAB_HOME, created and checked for write access."""
    home = Path(os.environ.get("ORGLAB_HOME") or Path.home() / ".orglab").expanduser().resolve()
    if not create:
        return home
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OrglabError(
            f"ORGLAB_HOME {home} cannot be created ({exc.strerror}); set ORGLAB_HOME to a writable folder."
        ) from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise OrglabError(f"ORGLAB_HOME {home} is not writable; set ORGLAB_HOME to a writable folder.")
    return home


def registry_path(create: bool = True) -> Path:
    """The registry this process uses: ORGLAB_HOME/registry.sqlite, or a task's private one (TASK_REGISTRY_ENV)."""
    private = os.environ.get(TASK_REGISTRY_ENV)
    if private:
        return Path(private).expanduser().resolve()
    return orglab_home(create) / REGISTRY_FILE


def registry_write_lock(registry_file: Path) -> Path:
    """The lock file beside a registry that serialises its writers on a network filesystem (orglab.registry)."""
    return Path(registry_file).with_name(Path(registry_file).name + ".writelock")


def report_dir(name: str) -> Path:
    """Default folder of the HTML report of a sweep (`orglab demo` writes there; `orglab report --out` elsewhere)."""
    return orglab_home() / "reports" / _safe(name)


def base_dir(name: str) -> Path:
    """Folder of a base orglab converted itself (a GGUF base dequantized into a Hugging Face folder); not created."""
    return orglab_home() / "bases" / _safe(name)


def gguf_cache_dir() -> Path:
    """Where packaged GGUF files are assembled before conversion (created)."""
    path = orglab_home() / "cache" / "gguf"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_dir() -> Path:
    """Inter-process locks on units of work (an organism, a base), so concurrent sweeps never race."""
    path = orglab_home() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_file(key: str) -> Path:
    """The lock file of one unit of work, keyed '<kind>-<name>' (e.g. 'organism-sdf-x-mix1-0', 'base-tiny')."""
    return lock_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', key)}.lock"


def artifact_dir(subject: str, run_kind: str, config_hash: str, create: bool = True) -> Path:
    """Folder for one run's artifacts; `subject` is the base or organism the run is about."""
    path = orglab_home() / "artifacts" / _safe(subject) / _safe(run_kind) / _safe(config_hash)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def subject_dir(subject: str, home: Path | None = None) -> Path:
    """Every run folder of one base or organism lies under this folder (so removing it removes all of them)."""
    return (home or orglab_home()) / "artifacts" / _safe(subject)


def run_log_file(run_folder: Path) -> Path:
    """The trainer's log lines of one run (one JSON object a line), in the run's artifact folder."""
    return Path(run_folder) / "train_log.jsonl"


def _safe(part: str) -> str:
    """A path component from a registry name; hub ids like 'org/model' become 'org--model'."""
    cleaned = part.replace("/", "--").replace("\\", "--")
    if not cleaned or cleaned in {".", ".."}:
        raise OrglabError(f"'{part}' cannot be used as a name; use letters, digits, '-', '_' or '.'.")
    return cleaned
