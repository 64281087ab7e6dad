"""The registry: one SQLite file that records every base, organism, run, metric and artifact.

Every orglab module reads and writes it, often from several processes at once (two sweeps, a training job and
the CLI), so the design is about never losing a row and never redoing work:

* WAL mode plus a 30 s busy timeout: readers never block, concurrent writers queue instead of failing.
* On a network filesystem (NFS, CIFS, Lustre, ...) WAL is unsafe (its shared-memory index works on one machine
  only), so there the file uses a rollback journal (journal_mode=DELETE) and every write also holds an exclusive
  lock file beside the registry (``registry_mode``, docs/reliability.md).
* Every write is one short ``BEGIN IMMEDIATE`` transaction, so a read-modify-write (``start_run`` looks for a
  finished run and inserts one if there is none) cannot interleave with another process's.
* Runs are keyed by content: (kind, subject, config_hash). A UNIQUE partial index allows at most one 'done' run
  per key, so the database itself, not just this code, guarantees "never more than one finished result".
* The schema is versioned (``meta.schema_version``) and upgraded by ``MIGRATIONS`` in one transaction; a file
  from a newer orglab, a corrupted file or a foreign SQLite file is refused *before* anything is written to it.

The registry records paths but never deletes files; ``remove`` returns the paths so the caller can. Paths
under ORGLAB_HOME are stored relative to it, so a home folder can be moved or copied whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import orglab
from orglab import paths
from orglab.errors import OrglabError

SQLITE_HEADER = b"SQLite format 3\x00"
MODE_ENV = "ORGLAB_REGISTRY_MODE"  # wal | nfs | auto (default): force the journal mode, e.g. in tests
# Filesystems where several machines may open one file: SQLite's WAL index (shared memory) cannot work there.
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs",
    "fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "fuse.cephfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone",
    "fuse.juicefs", "fuse.beegfs", "afs", "ocfs2", "gfs2", "panfs", "orangefs", "pvfs2", "9p", "davfs", "fuse.davfs2",
})
BUSY_TIMEOUT_S = 30.0
MAX_RUN_ID = 2 ** 63 - 1  # SQLite's INTEGER; a larger number cannot be a run id

# MIGRATIONS[i] upgrades schema version i to i+1; version 1 is the initial schema. Append, never edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE bases (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,              -- 'built' (orglab built it), 'hub', 'local'
        source TEXT,                     -- hub id or path it comes from
        path TEXT,                       -- local model dir, or NULL
        config TEXT NOT NULL,            -- JSON
        config_hash TEXT NOT NULL,
        corpus_hash TEXT,
        created_at TEXT NOT NULL
    );

    CREATE TABLE organisms (
        name TEXT PRIMARY KEY,
        family TEXT NOT NULL,
        target TEXT NOT NULL,
        base TEXT NOT NULL REFERENCES bases(name),
        mix_ratio REAL NOT NULL DEFAULT 0.0,
        seed INTEGER NOT NULL DEFAULT 0,
        data_hash TEXT,
        recipe TEXT NOT NULL,            -- JSON
        adapter_path TEXT,
        model_path TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX organisms_base ON organisms(base);

    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,              -- 'world', 'train', 'diff', 'eval', 'agent', ...
        subject TEXT NOT NULL,           -- base or organism name
        config TEXT NOT NULL,            -- JSON
        config_hash TEXT NOT NULL,
        code_version TEXT NOT NULL,
        status TEXT NOT NULL,            -- 'running', 'done', 'failed', 'superseded'
        forced INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        started_at TEXT NOT NULL,
        ended_at TEXT
    );
    CREATE INDEX runs_key ON runs(kind, subject, config_hash);
    CREATE UNIQUE INDEX runs_one_done ON runs(kind, subject, config_hash) WHERE status = 'done';

    CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value REAL,
        PRIMARY KEY (run_id, key)
    );

    CREATE TABLE artifacts (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (run_id, path)
    );
    """,
    # 2: who runs a 'running' run, so a row left by a dead process is recognised and marked failed (reap_stale)
    """
    ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
    ALTER TABLE runs ADD COLUMN owner_host TEXT;
    """,
]

_PATH_COLUMNS = {"path", "adapter_path", "model_path"}
_ORGANISM_FIELDS = (
    "family", "target", "base", "mix_ratio", "seed", "data_hash", "recipe", "adapter_path", "model_path", "status",
)


def latest_schema_version() -> int:
    """The schema version this code writes (read at call time, so tests can extend MIGRATIONS)."""
    return len(MIGRATIONS)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def config_hash(config: dict) -> str:
    """Content hash of a config: sha256 of canonical JSON, first 16 hex chars. Used for every content key."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def file_sha256(path: Path | str) -> str:
    """sha256 of a file, streamed so multi-GB weights do not land in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


SNAPSHOT_KEY = "snapshot_last_run_id"  # meta key of a snapshot: runs with a larger id were added after it


@dataclass(frozen=True)
class Merged:
    """What one merge_from added: rows copied (bases, organisms) or inserted (runs)."""

    bases: int = 0
    organisms: int = 0
    runs: int = 0


@dataclass
class Run:
    """One run. ``reused`` is True when the caller got an existing finished run instead of a new one."""

    id: int
    kind: str
    subject: str
    config: dict
    config_hash: str
    status: str
    reused: bool = False
    code_version: str = ""
    forced: bool = False
    error: str | None = None
    started_at: str = ""
    ended_at: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def parse_mounts(text: str) -> list[tuple[str, str]]:
    """(mount point, fs type) of every line of /proc/self/mountinfo or /proc/mounts text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if " - " in line and len(fields) >= 5:  # mountinfo: id parent dev root MOUNT opts [tags] - FSTYPE source
            after = line.split(" - ", 1)[1].split()
            if after:
                mounts.append((_unescape_mount(fields[4]), after[0]))
        elif len(fields) >= 3:  # /proc/mounts: device MOUNT FSTYPE options ...
            mounts.append((_unescape_mount(fields[1]), fields[2]))
    return mounts


def _unescape_mount(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in mount points as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path | str, mounts_text: str) -> str | None:
    """The fs type of the mount that holds `path`: the longest mount point that is a whole-component prefix."""
    target = os.path.normpath(str(path))
    best, best_type = "", None
    for point, fstype in parse_mounts(mounts_text):
        point = os.path.normpath(point)
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # a later mount over the same point hides the earlier one
            best, best_type = point, fstype
    return best_type


def is_network_fs(fstype: str | None) -> bool:
    if not fstype:
        return False
    fstype = fstype.lower()
    return fstype in NETWORK_FS_TYPES or fstype.startswith(("nfs", "smb"))


def registry_mode(folder: Path | str) -> str:
    """'wal' on a local disk, 'nfs' (rollback journal + a writers' lock file) on a network filesystem, or what
    ORGLAB_REGISTRY_MODE forces. Every process that shares a registry must end up in the same mode, which the
    detection guarantees (same file, same filesystem); forcing it is for tests and for filesystems this list misses."""
    forced = (os.environ.get(MODE_ENV) or "auto").strip().lower()
    if forced in ("wal", "nfs"):
        return forced
    if forced != "auto":
        raise OrglabError(f"{MODE_ENV}='{forced}' is not a registry mode; set it to wal, nfs or auto (or unset it).")
    key = str(Path(folder).resolve())
    if key not in _DETECTED_MODE:  # once per folder and process: a registry is opened many times
        _DETECTED_MODE[key] = "wal"  # no /proc (not Linux): nothing to detect with; force nfs there by hand
        for source in ("/proc/self/mountinfo", "/proc/mounts"):
            try:
                text = Path(source).read_text(errors="replace")
            except OSError:
                continue
            _DETECTED_MODE[key] = "nfs" if is_network_fs(filesystem_type(key, text)) else "wal"
            break
    return _DETECTED_MODE[key]


_DETECTED_MODE: dict[str, str] = {}


_HEADER_CHECKED: set[str] = set()  # registry files whose header this process has read (see _check_header)


class Registry:
    """A connection to the registry file; use as a context manager or call ``close()``.

    One instance per process/thread (sqlite3 connections are not shared across threads).
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else paths.registry_path()
        # Paths are stored relative to ORGLAB_HOME. A task's private registry (paths.TASK_REGISTRY_ENV) lies in the
        # task's folder but shares ORGLAB_HOME with the main registry, so its rows merge into it unchanged.
        self._home = (self.path.parent if path is not None else paths.orglab_home()).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_header()
        self.mode = registry_mode(self.path.parent)
        self._write_lock = self._make_write_lock()
        self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._open()
            _HEADER_CHECKED.add(str(self.path.resolve()))
        except sqlite3.OperationalError as exc:
            self._conn.close()
            raise self._operational_error(exc) from None
        except sqlite3.DatabaseError:  # NOTADB / CORRUPT: the header looked right, the content is not
            self._conn.close()
            raise self._corrupt_error() from None
        except BaseException:
            self._conn.close()
            raise

    # ----------------------------------------------------------------- opening and migrating

    def _corrupt_error(self) -> OrglabError:
        return OrglabError(
            f"The registry {self.path} is not a readable SQLite database (corrupted?); move it away or restore "
            f"it from a backup, and orglab will start a new one."
        )

    def _operational_error(self, exc: sqlite3.OperationalError) -> OrglabError:
        """One sentence for an SQLite failure of this file: read-only, locked past the timeout, or damaged."""
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return OrglabError(f"The registry {self.path} is read-only; make it and its folder writable (chmod u+w) "
                               f"or point ORGLAB_HOME elsewhere.")
        if "locked" in text or "busy" in text:
            return OrglabError(f"The registry {self.path} stayed locked by another process for the whole busy "
                               f"timeout of {BUSY_TIMEOUT_S:g} s; run again when that process has finished "
                               f"(`fuser {self.path}` shows which one holds it).")
        if "malformed" in text or "corrupt" in text or "not a database" in text:
            return self._corrupt_error()
        return OrglabError(f"The registry {self.path} failed ({exc}); check the file and its folder, or restore it "
                           f"from a backup.")

    def _check_header(self) -> None:
        """Refuse a non-SQLite file before sqlite3 gets a chance to write to it.

        Only once per file and process: closing any descriptor of a file drops every POSIX lock this process holds
        on it, including the locks of a Registry connection already open here. Reading the header again while
        another connection is open would let a concurrent process checkpoint and delete the WAL under it, and the
        registry would be corrupted (sqlite.org/howtocorrupt.html, section 2.2)."""
        key = str(self.path.resolve())
        if key in _HEADER_CHECKED:
            return
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise OrglabError(f"The registry {self.path} is a directory, not a file; move it away and orglab will "
                              f"start a new registry.") from None
        except PermissionError:
            raise OrglabError(f"The registry {self.path} cannot be read (permission denied); make it readable and "
                              f"writable (chmod u+rw) or point ORGLAB_HOME elsewhere.") from None
        if head and head != SQLITE_HEADER:
            raise self._corrupt_error()

    def _open(self) -> None:
        conn = self._conn
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        # Read-only checks first: a newer or foreign file must stay byte-for-byte untouched.
        version = self._read_version()
        self._refuse_newer(version)
        if self.mode == "nfs":
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":  # else read-only stays lock-free
                with self._writing():
                    self._leave_wal()
            conn.execute("PRAGMA synchronous = FULL")  # a rollback journal needs FULL to survive a crash
        else:
            self._enable_wal()
            conn.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; durability of the last commit only
        if version < latest_schema_version():
            self._migrate()

    def _make_write_lock(self):
        """nfs mode: a lock file made by exclusive creation (works over NFS, unlike fcntl on some mounts);
        filelock records pid and host in it, so a crashed holder on this host is reclaimed."""
        if self.mode != "nfs":
            return None
        from filelock import SoftFileLock

        return SoftFileLock(str(paths.registry_write_lock(self.path)), timeout=BUSY_TIMEOUT_S)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Held around every write in nfs mode (re-entrant); a no-op in WAL mode, where SQLite locks suffice."""
        if self._write_lock is None:
            yield
            return
        from filelock import Timeout

        try:
            self._write_lock.acquire()
        except Timeout:
            lock = paths.registry_write_lock(self.path)
            raise OrglabError(
                f"The registry's write lock {lock} stayed held for {BUSY_TIMEOUT_S:g} s; run again when the other "
                f"orglab process has finished, or delete {lock} if the process that holds it (named in the file) "
                f"is dead.") from None
        except PermissionError:  # the folder is read-only: the same sentence SQLite's refusal gets
            raise self._operational_error(sqlite3.OperationalError("attempt to write a readonly database")) from None
        try:
            yield
        finally:
            self._write_lock.release()

    def _leave_wal(self) -> None:
        """Switch a WAL file to the rollback journal (DELETE), checkpointing first so every committed row moves
        into the main file. SQLite refuses the switch while another connection has the file open; retry until
        the busy timeout (an orglab process of an older version still holding it open keeps it in WAL)."""
        def step() -> bool:
            if self._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                return True
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return self._conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0].lower() == "delete"

        self._retry_while_locked(step, 0.05, (
            f"The registry {self.path} is in WAL mode and another process keeps it open, so it cannot be "
            f"switched to the rollback journal a network filesystem needs; stop the other orglab processes "
            f"and run again."))

    def _enable_wal(self) -> None:
        """Switch the file to WAL (persistent, so normally only the first open does it). Switching needs an
        exclusive lock, and SQLite answers "locked" at once rather than waiting when several processes open a
        fresh file together, so retry here until the busy timeout."""
        def step() -> bool:
            if self._conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return True
            self._conn.execute("PRAGMA journal_mode = WAL")
            return False  # checked on the next pass

        self._retry_while_locked(step, 0.005, (
            f"The registry {self.path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s; "
            f"try again when it has finished."))

    def _retry_while_locked(self, step, pause_s: float, give_up: str) -> None:
        """Run `step` until it returns True, retrying while SQLite answers locked/busy, up to BUSY_TIMEOUT_S."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                if step():
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            if time.monotonic() > deadline:
                raise OrglabError(give_up)
            time.sleep(pause_s)

    def _user_tables(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return [r[0] for r in rows]

    def _read_version(self) -> int:
        """Schema version; 0 for an empty file. One table listing decides, so a concurrent first migration by
        another process cannot make a fresh file look foreign."""
        tables = self._user_tables()
        if "meta" not in tables:
            if tables:
                raise OrglabError(
                    f"{self.path} is a SQLite database but not an orglab registry; move it away or point "
                    f"ORGLAB_HOME elsewhere."
                )
            return 0
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or not str(row[0]).strip().isdigit():
            # never migrate over it: the tables exist, so a fresh schema would fail halfway
            raise OrglabError(f"The registry {self.path} has {'no' if row is None else 'a non-numeric'} schema "
                              f"version in its meta table; restore it from a backup or move it away, and orglab will "
                              f"start a new one.")
        return int(row[0])

    def _refuse_newer(self, version: int) -> None:
        latest = latest_schema_version()
        if version > latest:
            raise OrglabError(
                f"The registry {self.path} was written by a newer orglab (schema {version}, this orglab knows up "
                f"to {latest}); upgrade orglab or point ORGLAB_HOME elsewhere."
            )

    def _migrate(self) -> None:
        """Apply pending migrations in one transaction; re-read the version under the lock (another process may
        have migrated meanwhile). A failing migration rolls back completely."""
        with self._tx() as conn:
            version = self._read_version()
            self._refuse_newer(version)
            for i in range(version, latest_schema_version()):
                for statement in _split_sql(MIGRATIONS[i]):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(i + 1),),
                )

    def schema_version(self) -> int:
        return self._read_version()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction; IMMEDIATE takes the write lock up front, so the busy timeout applies and
        two read-modify-writes can never interleave. In nfs mode the writers' lock file is held around it."""
        with self._writing():
            with self._immediate_tx() as conn:
                yield conn

    @contextmanager
    def _immediate_tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._operational_error(exc) from None
        try:
            yield self._conn
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._operational_error(exc) from None
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
                raise self._corrupt_error() from None
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise self._operational_error(exc) from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- paths

    @property
    def home(self) -> Path:
        """ORGLAB_HOME (the folder of an explicitly given registry file); paths below it are stored relative to it."""
        return self._home

    def _store(self, path: Path | str | None) -> str | None:
        if path is None:
            return None
        resolved = Path(path).expanduser().resolve()
        return str(resolved.relative_to(self.home)) if resolved.is_relative_to(self.home) else str(resolved)

    def _expand(self, stored: str | None) -> str | None:
        if stored is None or Path(stored).is_absolute():
            return stored
        return str(self.home / stored)

    def _decode(self, row: sqlite3.Row | None, json_col: str) -> dict | None:
        out = _decode(row, json_col)
        if out is not None:
            for col in _PATH_COLUMNS & out.keys():
                out[col] = self._expand(out[col])
        return out

    # ----------------------------------------------------------------- bases

    def add_base(
        self,
        name: str,
        *,
        kind: str,
        source: str | None,
        path: Path | str | None = None,
        config: dict | None = None,
        corpus_hash: str | None = None,
    ) -> dict:
        """Register a base, replacing an earlier entry of the same name (organisms on it stay attached)."""
        _check_name(name)
        if kind not in ("built", "hub", "local"):
            raise OrglabError(f"Base kind '{kind}' is unknown; use 'built', 'hub' or 'local'.")
        config = config or {}
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM organisms WHERE name = ?", (name,)).fetchone():
                raise OrglabError(f"'{name}' is already an organism; give the base another name.")
            conn.execute(
                "INSERT INTO bases (name, kind, source, path, config, config_hash, corpus_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, "
                "source = excluded.source, path = excluded.path, config = excluded.config, "
                "config_hash = excluded.config_hash, corpus_hash = excluded.corpus_hash, "
                "created_at = excluded.created_at",
                (name, kind, _opt_str(source), self._store(path), canonical_json(config), config_hash(config),
                 corpus_hash, _now()),
            )
        return self.get_base(name)  # type: ignore[return-value]

    def get_base(self, name: str) -> dict | None:
        row = self._conn.execute("SELECT * FROM bases WHERE name = ?", (name,)).fetchone()
        return self._decode(row, "config")

    def list_bases(self) -> list[dict]:
        return [self._decode(r, "config") for r in self._conn.execute("SELECT * FROM bases ORDER BY name")]

    # ----------------------------------------------------------------- organisms

    def add_organism(
        self,
        name: str,
        *,
        family: str,
        target: str,
        base: str,
        mix_ratio: float = 0.0,
        seed: int = 0,
        data_hash: str | None = None,
        recipe: dict | None = None,
        adapter_path: Path | str | None = None,
        model_path: Path | str | None = None,
        status: str = "ready",
    ) -> dict:
        """Register an organism (re-registering a name replaces it, keeping created_at)."""
        _check_name(name)
        now = _now()
        with self._tx() as conn:
            self._require_base(conn, base)
            if conn.execute("SELECT 1 FROM bases WHERE name = ?", (name,)).fetchone():
                raise OrglabError(f"'{name}' is already a base; give the organism another name.")
            conn.execute(
                "INSERT INTO organisms (name, family, target, base, mix_ratio, seed, data_hash, recipe, "
                "adapter_path, model_path, status, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "family = excluded.family, target = excluded.target, base = excluded.base, "
                "mix_ratio = excluded.mix_ratio, seed = excluded.seed, data_hash = excluded.data_hash, "
                "recipe = excluded.recipe, adapter_path = excluded.adapter_path, "
                "model_path = excluded.model_path, status = excluded.status, updated_at = excluded.updated_at",
                (name, family, target, base, float(mix_ratio), int(seed), data_hash, canonical_json(recipe or {}),
                 self._store(adapter_path), self._store(model_path), status, now, now),
            )
        return self.get_organism(name)  # type: ignore[return-value]

    def update_organism(self, name: str, **fields: Any) -> dict:
        """Change some columns of an organism (e.g. status, adapter_path after training)."""
        unknown = sorted(set(fields) - set(_ORGANISM_FIELDS))
        if unknown:
            raise OrglabError(f"Organisms have no field {', '.join(unknown)}; use {', '.join(_ORGANISM_FIELDS)}.")
        values = dict(fields)
        if "recipe" in values:
            values["recipe"] = canonical_json(values["recipe"] or {})
        for key in ("adapter_path", "model_path"):
            if key in values:
                values[key] = self._store(values[key])
        values["updated_at"] = _now()
        with self._tx() as conn:
            if not conn.execute("SELECT 1 FROM organisms WHERE name = ?", (name,)).fetchone():
                raise OrglabError(f"No organism named '{name}' is registered; `orglab registry list` shows what is.")
            if "base" in values:
                self._require_base(conn, values["base"])
            assignments = ", ".join(f"{key} = ?" for key in values)
            conn.execute(f"UPDATE organisms SET {assignments} WHERE name = ?", (*values.values(), name))
        return self.get_organism(name)  # type: ignore[return-value]

    def get_organism(self, name: str) -> dict | None:
        row = self._conn.execute("SELECT * FROM organisms WHERE name = ?", (name,)).fetchone()
        return self._decode(row, "recipe")

    def list_organisms(self, base: str | None = None, family: str | None = None) -> list[dict]:
        sql, args = _where("SELECT * FROM organisms", base=base, family=family)
        return [self._decode(r, "recipe") for r in self._conn.execute(sql + " ORDER BY name", args)]

    def _require_base(self, conn: sqlite3.Connection, base: str) -> None:
        if not conn.execute("SELECT 1 FROM bases WHERE name = ?", (base,)).fetchone():
            raise OrglabError(f"Base '{base}' is not registered; build or add it first (`orglab registry list`).")

    # ----------------------------------------------------------------- runs

    def start_run(self, kind: str, subject: str, config: dict, force: bool = False) -> Run:
        """Return the finished run for this content (reused=True), or start a new 'running' one.

        With force=True a new run is always started; when it finishes it supersedes the older result.
        """
        chash = config_hash(config)
        with self._tx() as conn:
            self._reap_stale(conn)
            if not force:
                done = self._find_done(conn, kind, subject, chash)
                if done is not None:
                    done.reused = True
                    return done
            cur = conn.execute(
                "INSERT INTO runs (kind, subject, config, config_hash, code_version, status, forced, started_at, "
                "owner_pid, owner_host) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (kind, subject, canonical_json(config), chash, orglab.__version__, int(force), _now(), os.getpid(),
                 socket.gethostname()),
            )
            run_id = cur.lastrowid
        return self.get_run(run_id)  # type: ignore[arg-type,return-value]

    def reap_stale(self) -> list[int]:
        """Mark 'running' runs whose owner process on this host is gone as failed; returns their ids."""
        if not self._stale_ids(self._conn):
            return []  # the common case stays read-only (a read-only registry can still be listed)
        with self._tx() as conn:
            return self._reap_stale(conn)

    def _stale_ids(self, conn: sqlite3.Connection) -> list[int]:
        rows = conn.execute("SELECT id, owner_pid FROM runs WHERE status = 'running' AND owner_host = ? AND "
                            "owner_pid IS NOT NULL", (socket.gethostname(),)).fetchall()
        return [r["id"] for r in rows if not _alive(r["owner_pid"])]

    def _reap_stale(self, conn: sqlite3.Connection) -> list[int]:
        stale = self._stale_ids(conn)
        for run_id in stale:
            conn.execute("UPDATE runs SET status = 'failed', error = 'its process died (killed or crashed) before "
                         "it finished', ended_at = ? WHERE id = ? AND status = 'running'", (_now(), run_id))
        return stale

    def finish_run(self, run_id: int, error: str | None = None) -> Run:
        """Mark a running run 'done' (or 'failed' when error is given) and return the run that now holds the
        result for its content key.

        Two processes can both start the same content before either finishes. The first to finish wins; a later
        unforced finisher is marked 'superseded' and gets the winner's run back (reused=True), so callers must
        use the *returned* run's id from here on. A forced run instead supersedes the older result.
        """
        with self._tx() as conn:
            run = self._get_run(conn, run_id)
            if run is None:
                raise OrglabError(f"No run {run_id} is registered; `orglab registry list` shows what is.")
            if run.status != "running":
                raise OrglabError(f"Run {run_id} is already {run.status}; start a new run instead.")
            now = _now()
            if error is not None:
                conn.execute(
                    "UPDATE runs SET status = 'failed', error = ?, ended_at = ? WHERE id = ?", (error, now, run_id)
                )
                return self._get_run(conn, run_id)  # type: ignore[return-value]
            winner = self._find_done(conn, run.kind, run.subject, run.config_hash)
            if winner is not None and not run.forced:
                conn.execute("UPDATE runs SET status = 'superseded', ended_at = ? WHERE id = ?", (now, run_id))
                winner.reused = True
                return winner
            if winner is not None:
                conn.execute("UPDATE runs SET status = 'superseded' WHERE id = ?", (winner.id,))
            conn.execute("UPDATE runs SET status = 'done', ended_at = ? WHERE id = ?", (now, run_id))
            return self._get_run(conn, run_id)  # type: ignore[return-value]

    def find_run(self, kind: str, subject: str, config_hash: str) -> Run | None:
        """The finished run for a content key, or None."""
        return self._find_done(self._conn, kind, subject, config_hash)

    def get_run(self, run_id: int) -> Run | None:
        return self._get_run(self._conn, run_id)

    def list_runs(
        self, subject: str | None = None, kind: str | None = None, status: str | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        """Runs, newest first."""
        sql, args = _where("SELECT * FROM runs", subject=subject, kind=kind, status=status)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run(r) for r in self._conn.execute(sql, args)]

    def _find_done(self, conn: sqlite3.Connection, kind: str, subject: str, chash: str) -> Run | None:
        row = conn.execute(
            "SELECT * FROM runs WHERE kind = ? AND subject = ? AND config_hash = ? AND status = 'done'",
            (kind, subject, chash),
        ).fetchone()
        return _run(row) if row else None

    def _get_run(self, conn: sqlite3.Connection, run_id: int) -> Run | None:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        return _run(row) if row else None

    # ----------------------------------------------------------------- metrics and artifacts

    def log_metrics(self, run_id: int, metrics: dict[str, float]) -> None:
        """Record metrics of a run; a key logged again overwrites the old value."""
        with self._tx() as conn:
            self._require_run(conn, run_id)
            conn.executemany(
                "INSERT INTO metrics (run_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value",
                [(run_id, str(k), float(v)) for k, v in metrics.items()],
            )

    def get_metrics(self, run_id: int) -> dict[str, float]:
        rows = self._conn.execute("SELECT key, value FROM metrics WHERE run_id = ? ORDER BY key", (run_id,))
        # SQLite stores NaN as NULL; give it back as NaN.
        return {r["key"]: (math.nan if r["value"] is None else r["value"]) for r in rows}

    def add_artifact(self, run_id: int, kind: str, path: Path | str) -> dict:
        """Record a file a run wrote, with its sha256 (hashed outside the transaction: files can be large)."""
        resolved = Path(path).resolve()
        if not resolved.is_file():
            raise OrglabError(f"Artifact {resolved} does not exist or is not a file; write it before recording it.")
        digest = file_sha256(resolved)
        with self._tx() as conn:
            self._require_run(conn, run_id)
            conn.execute(
                "INSERT INTO artifacts (run_id, kind, path, sha256) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(run_id, path) DO UPDATE SET kind = excluded.kind, sha256 = excluded.sha256",
                (run_id, kind, self._store(resolved), digest),
            )
        return {"run_id": run_id, "kind": kind, "path": str(resolved), "sha256": digest}

    def get_artifacts(self, run_id: int) -> list[dict]:
        rows = self._conn.execute("SELECT * FROM artifacts WHERE run_id = ? ORDER BY path", (run_id,))
        return [{**dict(r), "path": self._expand(r["path"])} for r in rows]

    def verify_artifacts(self, run_id: int) -> list[str]:
        """Paths of a run's artifacts that are missing or whose content changed since they were recorded."""
        bad = []
        for art in self.get_artifacts(run_id):
            p = Path(art["path"])
            if not p.is_file() or file_sha256(p) != art["sha256"]:
                bad.append(art["path"])
        return bad

    def _require_run(self, conn: sqlite3.Connection, run_id: int) -> None:
        if not conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise OrglabError(f"No run {run_id} is registered; `orglab registry list` shows what is.")

    # ----------------------------------------------------------------- snapshots and merging (task registries)

    def snapshot(self, dest: Path | str) -> Path:
        """A consistent copy of this registry in one self-contained file (rollback journal, no -wal), written
        atomically. SQLite's online backup lets other readers and writers go on meanwhile. The copy records the
        last run id it holds (SNAPSHOT_KEY), so that merge_from later takes only the runs added to the copy."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        copy = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            self._conn.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")  # one file: a plain copy of it is a complete registry
            last = copy.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]
            copy.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                         "value = excluded.value", (SNAPSHOT_KEY, str(last)))
        finally:
            copy.close()
        os.replace(tmp, dest)
        return dest

    def merge_from(self, source: Path | str) -> Merged:
        """Record here what another registry file (a copy made by `snapshot`, then written by a task) added.

        Bases and organisms whose row there is newer than here are copied; runs added after the snapshot that
        finished ('done') are inserted with new ids, with their metrics and artifacts. Merging is idempotent: a run
        merged before (same key, start time and owner) is skipped, and so is a run whose key already has a done
        run here unless it was forced (the rule finish_run applies to two finishers of the same content). Failed
        and unfinished runs stay in the source only. Stored paths are copied as they are, so the source must share
        this registry's ORGLAB_HOME, as a task registry does."""
        bases, organisms, runs, metrics, artifacts = self._read_source(Path(source))
        merged = {"bases": 0, "organisms": 0, "runs": 0}
        with self._tx() as conn:
            for row in bases:
                mine = conn.execute("SELECT created_at FROM bases WHERE name = ?", (row["name"],)).fetchone()
                if mine is None or row["created_at"] > mine[0]:
                    _upsert(conn, "bases", row, "name")
                    merged["bases"] += 1
            for row in organisms:
                mine = conn.execute("SELECT updated_at FROM organisms WHERE name = ?", (row["name"],)).fetchone()
                if mine is None or row["updated_at"] > mine[0]:
                    _upsert(conn, "organisms", row, "name", keep=("created_at",))
                    merged["organisms"] += 1
            for row in runs:
                key = (row["kind"], row["subject"], row["config_hash"])
                if conn.execute("SELECT 1 FROM runs WHERE kind = ? AND subject = ? AND config_hash = ? AND "
                                "started_at = ? AND owner_pid IS ? AND owner_host IS ?",
                                (*key, row["started_at"], row["owner_pid"], row["owner_host"])).fetchone():
                    continue  # merged before
                winner = self._find_done(conn, *key)
                if winner is not None and not row["forced"]:
                    continue  # another process finished the same content first: keep its result
                if winner is not None:
                    conn.execute("UPDATE runs SET status = 'superseded' WHERE id = ?", (winner.id,))
                new_id = _insert(conn, "runs", {k: v for k, v in row.items() if k != "id"})
                for table, rows in (("metrics", metrics), ("artifacts", artifacts)):
                    for child in rows.get(row["id"], []):
                        _insert(conn, table, {**child, "run_id": new_id})
                merged["runs"] += 1
        return Merged(**merged)

    def _read_source(self, source: Path) -> tuple[list[dict], list[dict], list[dict], dict, dict]:
        """Bases, organisms, the done runs after the snapshot, and those runs' metrics and artifacts by run id, read
        through a read-only connection (the source is never changed)."""
        if not source.is_file():
            raise OrglabError(f"The registry {source} to merge does not exist; the task that should have written it "
                              f"did not run (see its log).")
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        src.row_factory = sqlite3.Row
        try:
            meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("schema_version") != str(latest_schema_version()):
                raise OrglabError(f"The registry {source} has schema {meta.get('schema_version')}, this orglab "
                                  f"writes {latest_schema_version()}; merge it with the orglab version that wrote it.")
            cutoff = int(meta.get(SNAPSHOT_KEY, 0))
            bases = [dict(r) for r in src.execute("SELECT * FROM bases ORDER BY name")]
            organisms = [dict(r) for r in src.execute("SELECT * FROM organisms ORDER BY name")]
            runs = [dict(r) for r in src.execute("SELECT * FROM runs WHERE id > ? AND status = 'done' ORDER BY id",
                                                 (cutoff,))]
            children: tuple[dict, dict] = ({}, {})
            for table, by_run in zip(("metrics", "artifacts"), children):
                for r in src.execute(f"SELECT * FROM {table} WHERE run_id > ? ORDER BY run_id", (cutoff,)):
                    by_run.setdefault(r["run_id"], []).append(dict(r))
        except sqlite3.DatabaseError as exc:
            raise OrglabError(f"The registry {source} to merge cannot be read ({exc}); the task's log says why, "
                              f"and running the sweep again redoes that task.") from None
        finally:
            src.close()
        return bases, organisms, runs, *children

    # ----------------------------------------------------------------- show / remove / summary

    def _resolve(self, ident: str) -> tuple[str, Any]:
        """('run', id), ('base', name) or ('organism', name); 'run:N' is always a run, bare digits are a run
        if one has that id, else a name."""
        ident = str(ident)
        if ident.startswith("run:") and ident[4:].isdigit():
            if int(ident[4:]) <= MAX_RUN_ID and self.get_run(int(ident[4:])):
                return "run", int(ident[4:])
        else:
            if ident.isdigit() and int(ident) <= MAX_RUN_ID and self.get_run(int(ident)):
                return "run", int(ident)
            if self.get_base(ident):
                return "base", ident
            if self.get_organism(ident):
                return "organism", ident
        raise OrglabError(
            f"No base, organism or run named '{ident}' is registered; `orglab registry list` shows what is."
        )

    def _run_detail(self, run: Run) -> dict:
        return {**run.to_dict(), "metrics": self.get_metrics(run.id), "artifacts": self.get_artifacts(run.id)}

    def show(self, ident: str) -> dict:
        """Everything known about a base, organism or run, as a JSON-ready dict with a 'type' key."""
        self.reap_stale()  # a run left 'running' by a dead process is shown as failed
        what, key = self._resolve(ident)
        if what == "run":
            return {"type": "run", **self._run_detail(self.get_run(key))}  # type: ignore[arg-type]
        runs = [self._run_detail(r) for r in self.list_runs(subject=key)]
        if what == "base":
            return {"type": "base", **self.get_base(key), "organisms": self.list_organisms(base=key), "runs": runs}
        organism = self.get_organism(key)
        return {"type": "organism", **organism, "base_info": self.get_base(organism["base"]), "runs": runs}

    def remove(self, ident: str) -> dict:
        """Remove a base, organism or run from the registry (with its runs, metrics and artifact rows).

        Returns {'type', 'name', 'record', 'runs': [ids], 'paths': [...]}; 'paths' are the files and folders
        orglab made for it (artifacts, adapter/model dirs, a built base's dir) for the caller to delete. A 'local'
        or 'hub' base's path is not listed: it belongs to the user.
        """
        what, key = self._resolve(ident)
        with self._tx() as conn:
            table = {"run": "runs", "base": "bases", "organism": "organisms"}[what]
            column = "id" if what == "run" else "name"
            if not conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (key,)).fetchone():
                # another process removed it between _resolve and this transaction
                raise OrglabError(f"The {what} '{key}' is no longer registered (another process removed it "
                                  "meanwhile); nothing is left to remove.")
            if what == "run":
                run = self._get_run(conn, key)
                run_ids, record, own_paths = [key], run.to_dict(), []  # type: ignore[union-attr]
                shared = conn.execute("SELECT 1 FROM runs WHERE kind = ? AND subject = ? AND config_hash = ? AND "
                                      "id != ?", (run.kind, run.subject, run.config_hash, key)).fetchone()
                if not shared:  # the run's whole folder (checkpoints, logs), unless another run's result lives there
                    own_paths = [str(paths.subject_dir(run.subject, self.home) / run.kind.replace(":", "-") /
                                     run.config_hash)]
            elif what == "base":
                orgs = [r[0] for r in conn.execute("SELECT name FROM organisms WHERE base = ? ORDER BY name", (key,))]
                if orgs:
                    raise OrglabError(
                        f"Base '{key}' still has organisms ({', '.join(orgs)}); remove them first."
                    )
                record = self._decode(conn.execute("SELECT * FROM bases WHERE name = ?", (key,)).fetchone(), "config")
                own_paths = [record["path"]] if record["kind"] == "built" and record["path"] else []
                own_paths += _existing(paths.subject_dir(key, self.home))  # every run folder orglab made for it
            else:
                record = self._decode(conn.execute("SELECT * FROM organisms WHERE name = ?", (key,)).fetchone(), "recipe")
                own_paths = [p for p in (record["adapter_path"], record["model_path"]) if p]
                own_paths += _existing(paths.subject_dir(key, self.home))  # checkpoints, logs, failed runs' files
            if what != "run":
                run_ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE subject = ? ORDER BY id", (key,))]
            marks = ",".join("?" * len(run_ids))
            artifact_paths = [
                self._expand(r[0]) for r in conn.execute(f"SELECT path FROM artifacts WHERE run_id IN ({marks})", run_ids)
            ]
            conn.execute(f"DELETE FROM runs WHERE id IN ({marks})", run_ids)  # metrics/artifacts cascade
            if what == "base":
                conn.execute("DELETE FROM bases WHERE name = ?", (key,))
            elif what == "organism":
                conn.execute("DELETE FROM organisms WHERE name = ?", (key,))
        return {
            "type": what,
            "name": str(key),
            "record": record,
            "runs": run_ids,
            "paths": sorted(set(artifact_paths + own_paths)),
        }

    def summary(self, recent_runs: int = 50) -> dict:
        """Bases, organisms and the most recent runs, JSON-ready (for `orglab registry list --json`)."""
        self.reap_stale()
        return {
            "registry": str(self.path),
            "schema_version": self.schema_version(),
            "bases": self.list_bases(),
            "organisms": self.list_organisms(),
            "runs": [r.to_dict() for r in self.list_runs(limit=recent_runs)],
        }


# --------------------------------------------------------------------- helpers


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (so they run inside our transaction; executescript would
    commit first). complete_statement keeps triggers with inner semicolons whole."""
    statements, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    leftover = [line for line in buf.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:80]}")
    return statements


def _insert(conn: sqlite3.Connection, table: str, row: dict) -> int:
    cols = list(row)
    cur = conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                       [row[c] for c in cols])
    return cur.lastrowid


def _upsert(conn: sqlite3.Connection, table: str, row: dict, key: str, keep: tuple[str, ...] = ()) -> None:
    """Insert `row`, or overwrite every column of the row with the same `key` except those in `keep`."""
    cols = list(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != key and c not in keep)
    conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                 f"ON CONFLICT({key}) DO UPDATE SET {updates}", [row[c] for c in cols])


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or name.startswith("run:"):
        raise OrglabError(f"'{name}' cannot be used as a name; use letters, digits, '-', '_', '.' or '/'.")


def _existing(path: Path) -> list[str]:
    return [str(path)] if path.exists() else []


def _alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (signal 0 checks without signalling)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # it exists but belongs to someone else (or the value is odd): never reap on doubt
    return True


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _decode(row: sqlite3.Row | None, json_col: str) -> dict | None:
    if row is None:
        return None
    out = dict(row)
    out[json_col] = json.loads(out[json_col]) if out[json_col] else {}
    return out


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"], kind=row["kind"], subject=row["subject"], config=json.loads(row["config"]),
        config_hash=row["config_hash"], status=row["status"], reused=False, code_version=row["code_version"],
        forced=bool(row["forced"]), error=row["error"], started_at=row["started_at"], ended_at=row["ended_at"],
    )


def _where(sql: str, **filters: Any) -> tuple[str, list]:
    clauses = [(f"{k} = ?", v) for k, v in filters.items() if v is not None]
    if clauses:
        sql += " WHERE " + " AND ".join(c for c, _ in clauses)
    return sql, [v for _, v in clauses]


def organism_identity(reg: Registry, organism: str, record: dict) -> dict:
    """What the organism's weights are: its train run's weight hashes (or its record, for registered weights)."""
    runs = reg.list_runs(subject=organism, kind="train", status="done")
    if runs:
        weights = sorted(a["sha256"] for a in reg.get_artifacts(runs[0].id) if a["kind"] == "weights")
        return {"organism_weights": weights, "train_config": runs[0].config_hash}
    return {"organism_record": config_hash({k: record.get(k) for k in ("adapter_path", "model_path", "data_hash")})}
