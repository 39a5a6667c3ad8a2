"""What the sync raises: one hierarchy, so that a caller can catch every refusal at once and the
command line can turn each kind into its message and exit status."""
from __future__ import annotations


class SyncError(Exception):
    """Anything the sync refuses or fails at; its text is the message to show."""


class ChapterError(SyncError, ValueError):
    """A chapter whose export markers the sync refuses: printed as one line, exit status 2."""


class UnknownChapterError(SyncError, ValueError):
    """A file named on the command line that is not one of the book's chapters (exit status 2)."""


class ExecutionError(SyncError):
    """A chapter that failed while executing: a cell raised or ran past the time limit. Its text is
    the whole message, ``dsnet.sync: CHAPTER ...`` (exit status 1)."""
