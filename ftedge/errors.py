"""Typed errors: each says what is wrong and how to fix it."""

from __future__ import annotations


# Exit codes of the commands besides 0 (success) and 2 (an FtedgeError: bad input, with a fix)
GATE_FAILED = 3  # an accuracy gate or parity check failed: the artifact exists but is not trusted
RUN_FAILED = 4  # an artifact could not run at all (bench)


class FtedgeError(Exception):
    """A user-facing error; `hint` says how to fix it."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  How to fix: {self.hint}"


class ConfigError(FtedgeError):
    """Bad configuration: unknown key, wrong type, value out of range."""


class DatasetError(FtedgeError):
    """The dataset cannot be used as given."""


class WeightsError(FtedgeError):
    """Pretrained or user weights cannot be found or do not fit the model."""


class RunError(FtedgeError):
    """A run folder is missing, incomplete or would be overwritten."""


class ExportError(FtedgeError):
    """An artifact cannot be built, loaded, run or trusted as asked."""


class DeployError(FtedgeError):
    """The deploy kit cannot be written for this artifact."""
