"""Bad input, and how a command reports it.

ConfigError: a bad study config; the message names the key and what is allowed.
DataError: a data file that is missing or wrong; the message names the file.
Each stage's own error (TokenizerError, FitError) is a ValueError too. `failed` is the one
way a `ladder` command turns any of them into its last line and exit code.
"""

from __future__ import annotations

import sys


class ConfigError(ValueError):
    """A bad study config; the message names the key and what is allowed."""


class DataError(ValueError):
    """A data file (corpus source, token shard, meta.json) that is missing or wrong; the
    message names the file and what is wrong with it."""


def failed(prog: str, e: BaseException) -> int:
    """Print `e` on stderr as one line, `<prog>: config error: ...`, `<prog>: data error:
    ...` or `<prog>: error: ...`, and return the exit code of bad input, 2. One line with
    the key or file named, never a traceback: the message is what the user must fix."""
    kind = (
        "config error"
        if isinstance(e, ConfigError)
        else "data error"
        if isinstance(e, DataError)
        else "error"
    )
    print(f"{prog}: {kind}: {e}", file=sys.stderr)
    return 2
