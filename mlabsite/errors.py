"""Errors every app may raise and every door shows the same way."""

from __future__ import annotations

from typing import Any


class FieldErrors(Exception):
    """A service's refusal of bad input, with its messages keyed as the API answers them (a 400 body), e.g.
    ``{"params": {"sample": {"label": ["…"]}}}``. The API's exception handler turns it into that answer; the
    admin and the commands show ``errors`` next to the fields they name."""

    field: str = ""

    def __init__(self, errors: dict[str, Any]):
        self.errors = errors
        super().__init__(errors)

    def as_response_body(self) -> dict[str, Any]:
        """The 400 body: the errors under ``field`` when the class names one, else as they are."""
        return {self.field: self.errors} if self.field else dict(self.errors)
