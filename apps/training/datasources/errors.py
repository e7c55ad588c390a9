"""What can go wrong with a data source, in words a business developer can act on."""

from __future__ import annotations


class DataSourceError(Exception):
    """Base class. The message is safe to show: it never contains a password or a token."""


class DataSourceUnavailable(DataSourceError):
    """The source cannot be reached or opened (server down, file missing, wrong credentials)."""


class BackendNotAvailable(DataSourceError):
    """This machine cannot execute on the source's back end (MaxCompute, Hive: no credentials here)."""


class QueryTimeout(DataSourceError):
    """The query ran longer than its statement timeout and was stopped."""

    def __init__(self, seconds: int):
        self.seconds = seconds
        super().__init__(
            f"The sample query was stopped after {seconds} s (its timeout). Narrow the date window, add filters "
            "or a row limit, or raise the timeout."
        )


class QueryFailed(DataSourceError):
    """The source refused or failed the query for another reason."""
