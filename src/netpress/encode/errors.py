"""The one error the ``.netp`` decoder raises on bad input."""
from __future__ import annotations

from netpress.errors import NetpressError


class NetpressFormatError(NetpressError, ValueError):
    """A ``.netp`` file (or an encoded stream) is malformed, truncated, corrupted or of an unknown version.

    Attributes:
        section: the part of the file that failed (``header``, ``manifest``, ``fc1.weight/values``, ...).
    """

    def __init__(self, section: str, message: str):
        section = " ".join(str(section).split())[:200]  # one line, whatever a crafted name or a library said
        super().__init__(f"{section}: {' '.join(str(message).split())}")
        self.section = section


def check(ok: bool, section: str, message: str) -> None:
    """Raise :class:`NetpressFormatError` for ``section`` unless ``ok``."""
    if not ok:
        raise NetpressFormatError(section, message)
