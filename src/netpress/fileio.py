"""Crash-safe file writes: a uniquely named temporary file in the same folder, fsync, an atomic rename, fsync of
the folder. Readers never see a partial file, two writers never share a temporary file, and a failed write
leaves nothing behind.

Example:
    >>> atomic_write_text(Path("run/result.json"), "{}\\n")
    >>> with atomic_path(Path("model.safetensors")) as tmp:
    ...     save_file(state, str(tmp))
"""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Callable, Iterator


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path beside ``path`` for a writer; on success it is fsynced and renamed onto ``path``.

    Args:
        path: the final file.

    Yields:
        The temporary path (unique per call; created empty).

    Example:
        >>> with atomic_path("net.netp") as tmp:
        ...     tmp.write_bytes(data)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # unique; the umask sets the mode
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a unique temporary path, then fsync and rename it onto ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` via a unique temporary file and a rename (a crash never leaves a truncated checkpoint)."""
    import torch

    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def check_out_path(path: str | os.PathLike, folder: bool = False, what: str = "--out") -> Path:
    """Check, before any work, that ``path`` can be written: its parent is an existing writable folder, and it is
    not a folder (``folder=False``) or not a file (``folder=True``, a folder to create or fill).

    Args:
        path: the output file or folder.
        folder: whether the output is a folder.
        what: the option's name, for the message.

    Returns:
        ``Path(path)``.

    Raises:
        ConfigError: naming what is wrong.

    Example:
        >>> check_out_path("results/net.netp")
        PosixPath('results/net.netp')
    """
    from netpress.errors import ConfigError

    path = Path(path)
    parent = path.parent
    if path.is_dir() and not folder:
        raise ConfigError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not path.is_dir() and folder:
        raise ConfigError(f"{what} {path} is a file; give a folder")
    if not parent.exists():
        raise ConfigError(f"{what} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is not a folder")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK) or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: {target} is not writable")
    return path
