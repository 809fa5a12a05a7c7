"""Writing files so that a crash never leaves half of one: a temporary file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``target``'s folder, then rename it to ``target``.
    Readers see the old file or the new one, never a partial one; the file gets ordinary permissions
    (``mkstemp`` creates 0600)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_text_atomically(target: Path, text: str) -> Path:
    return write_atomically(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
