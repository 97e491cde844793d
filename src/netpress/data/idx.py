"""Reader for the IDX format (MNIST, Fashion-MNIST), gzipped or not, with clear errors."""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from netpress.errors import DataError

MAX_BYTES = 1 << 30  # 1 GiB: above any MNIST-style set (EMNIST: 0.64 GB), far below a bomb
_DEFLATE_MAX_RATIO = 1032  # DEFLATE cannot expand more than this
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file into a numpy array.

    Args:
        path: the file; a ``.gz`` suffix means gzip.

    Returns:
        The array with the shape the header declares.

    Raises:
        DataError: naming the file when it is truncated or malformed, or declares more than
            :data:`MAX_BYTES`; a compressed file is never decompressed past the size its header declares.
    """
    path = Path(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as fh:
            head = fh.read(4)
            _check_magic(path, head)
            head += fh.read(4 * head[3])
            shape, dtype, expected = _header(path, head)
            if path.suffix == ".gz" and expected > path.stat().st_size * _DEFLATE_MAX_RATIO:
                raise DataError(f"{path}: IDX header declares {expected:,} bytes, more than a "
                                f"{path.stat().st_size:,}-byte gzip file can hold")
            body = fh.read(expected + 1)  # never more than the header promises: a gzip bomb stops here
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(body) != expected:
        raise DataError(
            f"{path}: IDX body has {f'more than {expected}' if len(body) > expected else len(body)} bytes, header "
            f"shape {shape} needs {expected}" + (" (file truncated)" if len(body) < expected else "")
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _check_magic(path: Path, head: bytes) -> None:
    if len(head) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic bytes {head[:4].hex()})")
    if head[2] not in _DTYPES:
        raise DataError(f"{path}: unknown IDX element type 0x{head[2]:02x}")
    if head[3] == 0:
        raise DataError(f"{path}: truncated IDX header")


def _header(path: Path, head: bytes) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and body size the header declares (bounded by :data:`MAX_BYTES`)."""
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[head[2]])
    expected = math.prod(shape) * dtype.itemsize
    if expected > MAX_BYTES:
        raise DataError(f"{path}: IDX header declares shape {shape} ({expected:,} bytes), over the "
                        f"{MAX_BYTES:,}-byte limit")
    return shape, dtype, expected


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as (optionally gzipped) IDX; used to make test fixtures."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)
