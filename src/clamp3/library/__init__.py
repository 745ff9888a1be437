"""The persistent music library: LanceDB-backed, incremental, crash-safe, with ANN search.

See :class:`Library`.
"""

from clamp3.library.library import AddReport, Library, LibraryHit, LibrarySettings

__all__ = ["AddReport", "Library", "LibraryHit", "LibrarySettings"]
