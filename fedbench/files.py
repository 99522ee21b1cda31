"""Files written so that readers never see half of one: atomic writes (temp file, fsync, rename) and
small JSON objects (a run's summary.json, tracking.json, a partition cache's metadata)."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from fedbench.errors import WriteError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "w"):
    """Yield a file whose content replaces `path` only once it is complete: a temp file in the same
    directory, fsync, group-readable mode (mkstemp makes 0600; results are shared on clusters),
    rename. Readers never see half a file; on any failure `path` is as it was, the temp file is
    gone, and an OSError (full disk, read-only directory) becomes one WriteError line naming `path`."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise WriteError.of(path, exc) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (atomic_open)."""
    with atomic_open(path) as f:
        f.write(text)


def read_json_object(path: Path) -> dict | None:
    """The JSON object in `path`; None when it is absent or unreadable (not UTF-8, not JSON, not an object)."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # ValueError: also JSONDecodeError and UnicodeDecodeError
        return None
    return found if isinstance(found, dict) else None


def write_json(path: Path, obj: dict) -> None:
    """`obj` as indented, key-sorted JSON, written atomically (atomic_write)."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
