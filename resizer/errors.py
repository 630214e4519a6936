"""Exception types shared by the API and the CLI.

The CLI maps them to exit statuses: ``UsageError`` is exit 2 (the command line is
wrong), every other ``ResizerError`` is a per-input failure (exit 1).
"""

from __future__ import annotations


class ResizerError(Exception):
    """A failure the user can act on; its message names the file and the reason."""


class UsageError(ResizerError):
    """The request itself is invalid (bad scale, unknown method, conflicting options)."""


class ImageReadError(ResizerError):
    """An input could not be read as an image (missing, corrupt, too large, not an image)."""


class ImageWriteError(ResizerError):
    """An output could not be written (exists, unwritable folder, same as input)."""


class ModelError(ResizerError):
    """Weights are missing, corrupt, mismatched or cannot be fetched."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: raised in the main thread so that every Ctrl-C cleanup runs too."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum
