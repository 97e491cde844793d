"""Typed errors. Every user-facing failure is a subclass of :class:`NetpressError`."""


class NetpressError(Exception):
    """Base class for errors netpress raises on bad input or bad state."""


class ConfigError(NetpressError, ValueError):
    """A hyperparameter, option or recipe value is invalid."""


class UnknownNameError(NetpressError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataError(NetpressError):
    """Data is missing or malformed."""


class RunError(NetpressError):
    """A run folder, its files or the runs database are missing, unfinished, corrupt or not writable."""
