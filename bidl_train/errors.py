"""The project's own error type.

Raised for user mistakes (bad files, bad configs, bad checkpoints). The command
line tools catch it and print its message without a traceback. This module
imports nothing so that every layer of the package, data readers included,
may use it.
"""


class BidlError(Exception):
    """A problem the user can fix; the message says what and how."""


class DataError(BidlError, ValueError):
    """A data file is missing, truncated, corrupt or laid out unexpectedly.

    ``path`` names the file; ``offset`` the byte where reading failed, when
    known.
    """

    def __init__(self, message, path=None, offset=None):
        where = ''
        if path is not None:
            where = f'{path}'
            if offset is not None:
                where += f' (byte offset {offset})'
            where += ': '
        super().__init__(where + message)
        self.path = path
        self.offset = offset


class ConfigError(BidlError, ValueError):
    """A config key is missing, misspelt or holds a value of the wrong kind."""


class CheckpointError(BidlError):
    """A checkpoint cannot be loaded safely or does not match the model."""
