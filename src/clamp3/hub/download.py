"""Fetching registry files into the standard Hugging Face hub cache, resumably.

Files land where ``huggingface_hub`` itself puts them (``HF_HOME`` / ``HF_HUB_CACHE``:
``models--<org>--<name>/blobs/<etag>`` with a ``snapshots/<commit>/<file>`` link), so every tool
that reads that cache finds them. ``huggingface_hub`` resolves names and revisions; the transfer is
ours because it must resume: an interrupted download leaves ``blobs/<etag>.part`` behind and the
next attempt asks the server only for the missing bytes. ``HF_HUB_OFFLINE=1`` is honoured.
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
from huggingface_hub.utils import get_session

from clamp3.errors import ModelNotAvailableError
from clamp3.hub.registry import ModelEntry
from clamp3.progress import progress_bar


def cached_path(entry: ModelEntry, filename: str) -> Path | None:
    """The file's path in the local hub cache (or in the package, when bundled), ``None`` if absent."""
    if entry.bundled:
        path = entry.local_dir / filename
        return path if path.is_file() else None
    found = try_to_load_from_cache(entry.repo, filename, revision=entry.revision)
    return Path(found) if isinstance(found, str) else None


def fetch(entry: ModelEntry, filename: str, show_progress: bool = True) -> Path:
    """The local path of one file of ``entry``, downloading (or finishing) it if needed."""
    cached = cached_path(entry, filename)
    if cached is not None:
        return cached
    if entry.bundled:
        raise ModelNotAvailableError(
            f"{entry.local_dir / filename}: the bundled model {entry.name!r} is missing from this "
            "installation of clamp3; reinstall the package"
        )
    if constants.HF_HUB_OFFLINE:
        _unavailable(entry, filename, "HF_HUB_OFFLINE is set")
    try:
        metadata = get_hf_file_metadata(hf_hub_url(entry.repo, filename, revision=entry.revision))
        return _download(entry, filename, metadata, show_progress)
    except ModelNotAvailableError:
        raise
    except Exception as exc:  # network and HTTP errors come in many types, depending on the client
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _unavailable(entry, filename, reason)


def fetch_all(entry: ModelEntry, show_progress: bool = True) -> list[Path]:
    return [fetch(entry, filename, show_progress) for filename in entry.files]


def snapshot_dir(entry: ModelEntry) -> Path:
    """The cache folder holding all of ``entry``'s files (fetched if needed), for ``from_pretrained``."""
    return fetch_all(entry)[0].parent


def resolve_model_dir(name_or_dir: str) -> Path:
    """A model folder: the cached files of a registry name (fetched if needed), or an existing folder."""
    from clamp3.errors import Clamp3Error
    from clamp3.hub.registry import REGISTRY

    if name_or_dir in REGISTRY:
        return snapshot_dir(REGISTRY[name_or_dir])
    path = Path(name_or_dir)
    if not path.is_dir():
        raise Clamp3Error(f"{name_or_dir}: neither a model folder nor a known model name")
    return path


def _unavailable(entry: ModelEntry, filename: str, reason: str):
    raise ModelNotAvailableError(
        f"{filename} of {entry.repo} ({entry.name}) is not in the local model cache and could not be "
        f"downloaded ({reason}); fetch it with `clamp3 models pull {entry.name}` on a machine with "
        "network access"
    )


def _download(entry: ModelEntry, filename: str, metadata, show_progress: bool) -> Path:
    if not metadata.etag or not metadata.commit_hash:
        _unavailable(entry, filename, "the server sent no ETag or commit for it")
    repo_dir = Path(constants.HF_HUB_CACHE) / f"models--{entry.repo.replace('/', '--')}"
    blob = repo_dir / "blobs" / metadata.etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    lock_dir = Path(constants.HF_HUB_CACHE) / ".locks" / repo_dir.name
    lock_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_dir / f"{metadata.etag}.lock")):
        if not blob.exists():
            _transfer(
                metadata.location, blob.with_name(blob.name + ".part"), metadata.size, filename, show_progress
            )
            os.replace(blob.with_name(blob.name + ".part"), blob)
        snapshot = repo_dir / "snapshots" / metadata.commit_hash / filename
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        if not snapshot.exists():
            try:
                snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
            except OSError:  # file systems without symlinks get a hard link
                os.link(blob, snapshot)
        if entry.revision != metadata.commit_hash:
            refs = repo_dir / "refs" / entry.revision
            refs.parent.mkdir(parents=True, exist_ok=True)
            refs.write_text(metadata.commit_hash)
    return snapshot


def _transfer(url: str, part: Path, size: int | None, label: str, show_progress: bool) -> None:
    done = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    with (
        get_session().stream("GET", url, headers=headers, follow_redirects=True) as response,
        progress_bar(size or 0, label, show_progress and bool(size)) as bar,
    ):
        response.raise_for_status()
        if done and response.status_code != 206:  # the server ignored the range: start over
            done = 0
        bar.advance(done)
        with part.open("ab" if done else "wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
                bar.advance(len(chunk))
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        raise OSError(f"download of {label} stopped at {got} of {size} bytes; run again to resume")
