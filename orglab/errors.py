"""The one exception type that reaches the user as a single sentence.

Anything raised as `OrglabError` is bad input or a broken environment that the user can fix; the CLI
prints its message (one sentence: what is wrong, how to fix it) and exits non-zero. Every other
exception is a bug in orglab and keeps its traceback.
"""


class OrglabError(Exception):
    """A problem the user can fix, described in one sentence."""


def from_environment(exc: BaseException, registry: str) -> OrglabError | None:
    """The one sentence for a filesystem or SQLite error that escaped to the CLI (None: not one of those, a bug).

    `registry` is the registry file's path, which every SQLite error is about (orglab keeps no other database)."""
    import errno
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "readonly" in text or "read-only" in text:
            return OrglabError(f"The registry {registry} is read-only; make it and its folder writable "
                               f"(chmod u+w) or point ORGLAB_HOME elsewhere.")
        if "locked" in text or "busy" in text:
            return OrglabError(f"The registry {registry} stayed locked by another process past the busy timeout; "
                               f"run again when that process has finished (`fuser {registry}` shows it).")
        if isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text
                                                        or "corrupt" in text):
            return OrglabError(f"The registry {registry} is damaged ({exc}); restore it from a backup or move it "
                               f"away, and orglab will start a new one.")
        return OrglabError(f"The registry {registry} failed: {exc}; check the file and its folder, or restore it "
                           f"from a backup.")
    if isinstance(exc, OSError):
        where = exc.filename or "a file under ORGLAB_HOME"
        fixes = {errno.EACCES: "make it writable (chmod -R u+w) or remove it",
                 errno.EPERM: "make it writable (chmod -R u+w) or remove it",
                 errno.EROFS: "point ORGLAB_HOME at a writable filesystem",
                 errno.ENOSPC: "free some disk space",
                 errno.EISDIR: "move the folder away",
                 errno.ENOTDIR: "move the file that stands where a folder should be away"}
        fix = fixes.get(exc.errno, "check the path and its permissions")
        return OrglabError(f"Cannot use {where} ({exc.strerror or exc}); {fix}, and run again.")
    return None
