"""Errors that end a run with one clear line and a non-zero exit code (no traceback)."""


class FedbenchError(Exception):
    """Base class: the message is shown as one line, the process exits with `exit_code`."""

    exit_code = 2


class ConfigError(FedbenchError):
    """A config value is invalid: the message names the key, the value and what is allowed."""


class DataMissingError(FedbenchError):
    """Dataset files are absent: the message names the expected path and how to get them."""
