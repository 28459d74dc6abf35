"""Typed errors: every problem a user can cause gets one of these, with a message that says
what was wrong and how to fix it. The CLI prints the message and exits with code 2."""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SkNotFittedError


class AekitError(Exception):
    """Base class of every error aekit raises on purpose (bad input, bad files, bad settings)."""

    exit_code = 2


class DataError(AekitError, ValueError):
    """Input data is unusable: wrong shape or rank, NaN/inf, empty, mixed image sizes, ..."""


class DataFileError(DataError):
    """A data file is missing, truncated, corrupt or not what its name says (IDX, gz, image)."""


class ChecksumError(DataFileError):
    """A downloaded or cached file does not have the expected SHA-256."""


class DatasetNotFoundError(DataError, LookupError):
    """A named data set is unknown, or known but not present and not downloadable."""


class ConfigError(AekitError, ValueError):
    """A hyper-parameter or option is out of range or malformed."""


class UnknownNameError(ConfigError, KeyError):
    """A model, preset, task or corruption name is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ModelFileError(AekitError):
    """A saved model/run folder is missing, tampered with, from another kind or version."""


class RunExistsError(AekitError, FileExistsError):
    """The output folder exists already; pass overwrite=True / --overwrite to replace it."""


class ResumeError(AekitError):
    """A run cannot be resumed (no checkpoint, or data of a different shape)."""


class TrainingDivergedError(AekitError, FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class NotFittedError(AekitError, _SkNotFittedError):
    """An estimator method was called before fit()."""


class ExportParityError(AekitError):
    """An exported model's outputs differ from PyTorch's beyond the tolerance; nothing was written.

    ``report`` (an :class:`aekit.deploy.ExportReport`, when the check ran) holds each output's difference.
    """

    def __init__(self, message: str, *, report=None) -> None:
        super().__init__(message)
        self.report = report
