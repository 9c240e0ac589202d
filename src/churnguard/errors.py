"""The error types churnguard raises; the CLI turns each into one line and an exit code."""

from __future__ import annotations


class ChurnguardError(Exception):
    """Base of every error that churnguard reports to a user as one line."""

    exit_code: int = 1


class ConfigError(ChurnguardError):
    """A pipeline config file or option is missing, mistyped or out of range."""

    exit_code = 2


class DataContractError(ChurnguardError):
    """Input data breaks the data contract; the message names file, column and row."""

    exit_code = 2


class LeakageError(ChurnguardError):
    """A requested feature or split would let information from after the as-of date in."""

    exit_code = 2


class ModelRegistryError(ChurnguardError):
    """A saved model is missing, tampered with, or does not fit the data."""

    exit_code = 3


class EngineError(ChurnguardError):
    """The query engine cannot start: PySpark or Java is missing or too old."""

    exit_code = 1
