"""User-facing errors.

Every problem a user can cause (bad config, bad data, bad CLI arguments, bad paths) is raised
as an :class:`ArchsimError` subclass whose message is one line naming the problem and the fix.
The CLI turns them into that line on stderr and the documented exit code, without traceback.
"""

from __future__ import annotations


class ArchsimError(Exception):
    """Base class; ``exit_code`` is what the CLI returns for this kind of problem."""

    exit_code: int = 1


class ConfigError(ArchsimError):
    """A workload, hardware or sweep description is malformed or out of range."""

    exit_code = 2


class DataError(ArchsimError):
    """A dataset file is missing, truncated, corrupted or has the wrong checksum."""

    exit_code = 3


class OutputError(ArchsimError):
    """The output location cannot be written or would overwrite earlier results."""

    exit_code = 4


class MappingError(ArchsimError):
    """The network does not fit on the described hardware."""

    exit_code = 5


class PointsFailed(ArchsimError):
    """A sweep finished but some points failed (recorded with status 'error')."""

    exit_code = 6


class SchedulerError(ArchsimError):
    """The Dask scheduler given with --scheduler cannot be reached."""

    exit_code = 7


class InterruptedRun(ArchsimError):
    """The run was stopped by a signal; nothing partial was left behind."""

    exit_code = 130


class ResourceError(ConfigError):
    """A configuration or sweep needs more than this machine (or a fixed safety cap) allows:
    more memory than is available, a grid with too many points, an input nested too deeply.
    Checked before anything large is built; exit code 2 like every configuration problem."""


class IncompleteRun(ArchsimError):
    """Training finished but its results could not all be written; what it learned was kept
    in ``<out>.incomplete`` (or, if even that failed, printed). The exit code is the cause's:
    4 for an output problem (full disk, read-only or replaced folder), else 1."""

    def __init__(self, message: str, exit_code: int, accuracy: dict | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.accuracy = accuracy
