"""Writing files so that a crash never leaves half of one: a temporary file beside the target, then a rename.

Also the checks that go with it: :func:`ensure_writable_folder` before a command starts its work (so an
unwritable output fails at once, not after the work), and errors that say in one line which file could not
be written and why (:class:`~actionkit.errors.OutputError`: read-only, no space left, a file in the way).
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from actionkit.errors import OutputError

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "not a folder (a file is in the way)",
    errno.EEXIST: "a file is in the way (not a folder)",
    errno.EISDIR: "is a folder, not a file",
    errno.ENAMETOOLONG: "file name too long",
}

_TEMPORARY = ".{name}.*.tmp"  # what write_atomically's mkstemp names look like
_MIN_FREE = 1 << 20  # below this many free bytes after a failed write, the disk is taken to be full


def describe_os_error(error: OSError) -> str:
    """The problem an OSError stands for, in words for a one-line message (without the path)."""
    return _REASONS.get(error.errno or 0) or (error.strerror or str(error)).lower()


def ensure_writable_folder(folder: str | Path) -> Path:
    """Raise :class:`OutputError` naming ``folder`` unless files can be written in it: it (or, while it does not
    exist yet, its nearest existing parent, which creating it would write into) is a folder on a writable
    file system with space for a small file. Nothing is created: a probe file is written and removed.

    Call it before the work that ends in writing ``folder``, so that a read-only, full or mistyped output
    fails at once rather than after the work."""
    folder = Path(folder)
    existing = folder
    while not existing.is_dir():
        if existing.exists() or existing.is_symlink():  # a file (or a dangling link) where a folder must go
            where = "" if existing == folder else f" ({existing} is not a folder)"
            raise OutputError(folder, f"cannot write here: not a folder{where}")
        if existing.parent == existing:
            break
        existing = existing.parent
    try:
        fd, name = tempfile.mkstemp(prefix=".actionkit-write-check.", suffix=".tmp", dir=existing)
        try:
            os.write(fd, b"\0" * 4096)  # a page: a full disk refuses it
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as e:
        raise OutputError(folder, f"cannot write here: {describe_os_error(e)}") from e
    return folder


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temporaries :func:`write_atomically` left in ``folder`` when it was killed mid-write
    (``.NAME.RANDOM.tmp``; only those of target ``name`` if given). Call it where no other process is
    writing into ``folder`` (a run folder, by its run). Returns what was removed."""
    folder = Path(folder)
    pattern = _TEMPORARY.format(name=glob.escape(name) if name else "*")
    removed = []
    for path in folder.glob(pattern):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def is_temporary(path: Path) -> bool:
    """True for a name :func:`write_atomically` (or :func:`ensure_writable_folder`) gives its temporaries."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``target``'s folder, then rename it to ``target``.
    Readers see the old file or the new one, never a partial one; the file gets ordinary permissions
    (``mkstemp`` creates 0600). When the write fails the temporary is removed and the old file stays as it
    was; a failure of the file system (read-only, no space left, ...) raises :class:`OutputError` naming
    ``target`` (also for writers such as torch and safetensors that report a full disk in their own words)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OutputError(target, f"cannot write: {describe_os_error(e)}") from e
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except Exception as e:
        reason = _write_failure(e, target)
        if reason is None:
            raise
        raise OutputError(target, f"cannot write: {reason}") from e
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _write_failure(error: Exception, target: Path) -> str | None:
    """Why writing ``target`` failed, when the file system is the cause (None: the writer's own error).
    Writers that report a full disk without an errno are recognised by the OS's words in their message
    (safetensors: "No space left on device (os error 28)") or by the space left after the failure (torch,
    numpy: the temporary still holds what was written)."""
    if isinstance(error, OSError):
        if error.filename is not None and Path(error.filename).parent != target.parent:
            return None  # not this write's file (e.g. something the writer read)
        if error.errno in _REASONS:
            return _REASONS[error.errno]
    else:
        message = str(error)
        for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            if os.strerror(code) in message:
                return _REASONS[code]
    if _out_of_space(target.parent):
        return _REASONS[errno.ENOSPC]
    return describe_os_error(error) if isinstance(error, OSError) else None


def _out_of_space(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _MIN_FREE
    except OSError:
        return False


def write_text_atomically(target: Path, text: str) -> Path:
    return write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
