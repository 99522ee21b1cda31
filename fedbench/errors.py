"""Errors that end a run with one clear line and a non-zero exit code (no traceback)."""


def one_line(exc: BaseException) -> str:
    """`exc` as one line, 'Type: message' with every run of whitespace (newlines too) made one space:
    for quoting a library's (often multi-line) error inside a FedbenchError message."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class FedbenchError(Exception):
    """Base class: the message is shown as one line, the process exits with `exit_code`."""

    exit_code = 2


class ConfigError(FedbenchError):
    """A config value is invalid: the message names the key, the value and what is allowed."""


class DataMissingError(FedbenchError):
    """Dataset files are absent: the message names the expected path and how to get them."""


class WriteError(FedbenchError):
    """A file could not be written (full disk, read-only or vanished directory): the message names
    the file and what to do."""

    exit_code = 74  # EX_IOERR

    @classmethod
    def of(cls, path, exc: OSError) -> "WriteError":
        return cls(f"cannot write {path} ({exc.strerror or type(exc).__name__}): free some disk space or make "
                   f"its directory writable, then run the same command again")


class SweepStopped(KeyboardInterrupt):
    """Ctrl-C ended a sweep: its runs in flight stopped at the end of a round with a checkpoint. The
    message says what finished and how to resume (cli prints it as one line, exit code 130)."""
