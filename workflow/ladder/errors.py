"""The two kinds of bad input, each caught by the CLI and printed as one line.

ConfigError: a bad study config; the message names the key and what is allowed.
DataError: a data file that is missing or wrong; the message names the file.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad study config; the message names the key and what is allowed."""


class DataError(ValueError):
    """A data file (corpus source, token shard, meta.json) that is missing or wrong; the
    message names the file and what is wrong with it."""
