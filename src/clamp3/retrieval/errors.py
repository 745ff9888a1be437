"""Errors of the retrieval package (each message is one line)."""

from __future__ import annotations

from clamp3.errors import Clamp3Error, InputError
from clamp3.errors import MissingDependencyError as MissingDependencyError  # re-exported


class FeatureFolderError(Clamp3Error):
    """Some feature files of a folder could not be read; ``errors`` holds one ``InputError`` per file."""

    def __init__(self, folder: str, errors: list[InputError]) -> None:
        self.folder = folder
        self.errors = errors
        more = f" (and {len(errors) - 1} more, see .errors)" if len(errors) > 1 else ""
        super().__init__(f"{folder}: {len(errors)} bad feature file(s); first: {errors[0]}{more}")


class UnmatchedKeysError(Clamp3Error):
    """Queries and references do not pair up by key; lists the file paths on either side."""

    def __init__(self, unmatched_queries: list[str], unmatched_references: list[str], n_common: int) -> None:
        self.unmatched_queries = unmatched_queries
        self.unmatched_references = unmatched_references
        self.n_common = n_common
        total = len(unmatched_queries) + len(unmatched_references)
        super().__init__(
            f"{total} unmatched file(s): queries without reference {_preview(unmatched_queries)}, "
            f"references without query {_preview(unmatched_references)}; "
            f"allow unmatched keys to go on with the {n_common} common key(s)"
        )


class DimensionMismatchError(Clamp3Error):
    """Two sets of vectors that must be compared have different dimensions."""


class ModelMismatchError(Clamp3Error):
    """Vectors come from another embedding model than the one a classifier was trained on."""


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"
