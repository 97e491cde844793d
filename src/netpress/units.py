"""Unambiguous training lengths: ``'20ep'`` (epochs) or ``'500it'`` (iterations), or both ``'2ep100it'``."""
from __future__ import annotations

import re
from dataclasses import dataclass

from netpress.errors import ConfigError

_STEPS = re.compile(r"^\s*(?:(\d+)\s*ep)?\s*(?:(\d+)\s*it)?\s*$")


@dataclass(frozen=True)
class Steps:
    """A training length or point in training.

    Example:
        >>> Steps.parse("2ep").iterations(iterations_per_epoch=100)
        200
    """

    epochs: int = 0
    its: int = 0

    @classmethod
    def parse(cls, text: "str | Steps", allow_zero: bool = True) -> "Steps":
        """Parse ``'20ep'``, ``'500it'`` or ``'1ep50it'``.

        Raises:
            ConfigError: on anything else (bare numbers are ambiguous and rejected).
        """
        if isinstance(text, Steps):
            steps = text
        else:
            m = _STEPS.match(str(text))
            if str(text).strip().startswith("-"):
                raise ConfigError(f"steps {text!r} is negative; a length counts up from zero, e.g. '5ep' or '500it'")
            if not m or (m.group(1) is None and m.group(2) is None):
                raise ConfigError(
                    f"cannot parse steps {text!r}: use e.g. '20ep' (epochs) or '500it' (iterations)"
                )
            steps = cls(int(m.group(1) or 0), int(m.group(2) or 0))
        if not allow_zero and steps.epochs == 0 and steps.its == 0:
            raise ConfigError(f"steps {text!r} must be longer than zero")
        return steps

    def iterations(self, iterations_per_epoch: int) -> int:
        return self.epochs * iterations_per_epoch + self.its

    def __str__(self) -> str:
        if self.epochs and self.its:
            return f"{self.epochs}ep{self.its}it"
        return f"{self.epochs}ep" if self.epochs else f"{self.its}it"
