"""What the Ray paths share: the job's settings, the runtime, a pool of model actors over Ray Data,
and an actor's view of its input files (local paths as they are, URLs copied into a private folder).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clamp3.distributed.urls import fetch, is_url
from clamp3.errors import Clamp3Error, InputError, as_input_error
from clamp3.modality import FileKind, detect_kind


@dataclass(frozen=True)
class RayJob:
    """How a Ray path runs."""

    address: str
    """``"local"`` (a runtime started and shut down for the job) or a cluster's address."""
    workers: int
    gpus: float | None
    """GPUs per actor; ``None``: one with a CUDA device or on a cluster that has GPUs, else none."""
    show_progress: bool
    session_options: dict[str, Any]
    """``cache``, ``options`` and ``device`` of the actors' pipelines."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise Clamp3Error(f"ray_workers must be at least 1, got {self.workers}")


@contextmanager
def ray_runtime(job: RayJob) -> Iterator[Any]:
    """The ``ray`` module, connected: the running runtime, or one started for ``job`` (a local one is
    shut down at the end). A Ray error becomes a one-line :class:`Clamp3Error`."""
    try:
        import ray.data
    except ImportError:
        raise Clamp3Error("the Ray path needs Ray: pip install 'clamp3[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=job.address, include_dashboard=False)
    try:
        yield ray
    except ray.exceptions.RayError as exc:
        raise Clamp3Error(f"the Ray job failed: {_reason(exc)}") from None
    finally:
        if started and job.address == "local":
            ray.shutdown()


def _reason(exc: BaseException) -> str:
    """The last line of a Ray error: the exception raised in the actor or task, without its module."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1].removeprefix("clamp3.errors.")[:300]


def actor_dataset(
    ray: Any,
    job: RayJob,
    rows: list[dict[str, Any]],
    actor: type,
    most_per_call: int,
    preserve_order: bool = False,
    **actor_args: Any,
) -> Any:
    """``rows`` through a fixed pool of ``job.workers`` actors (``actor(**actor_args, cache=, options=,
    device=, threads=)``), each call given at most ``most_per_call`` rows as a pyarrow table."""
    device, gpus, workers = job.session_options["device"], job.gpus, job.workers
    if gpus is None:
        wants_gpu = device is not None and device.startswith("cuda")
        gpus = 1.0 if wants_gpu or (device is None and ray.cluster_resources().get("GPU", 0) > 0) else 0.0
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = job.show_progress
    context.execution_options.preserve_order = preserve_order
    # about 4 calls an actor at least, so that actors finishing early take more
    per_call = max(1, min(most_per_call, math.ceil(len(rows) / (4 * workers))))
    return ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / per_call)).map_batches(
        actor,
        fn_constructor_kwargs={
            **actor_args,
            "cache": job.session_options["cache"],
            "options": job.session_options["options"],
            "device": device,
            "threads": None if gpus else 1,
        },
        compute=ray.data.ActorPoolStrategy(size=workers),
        batch_size=per_call,
        batch_format="pyarrow",
        num_gpus=gpus or None,
        num_cpus=None if gpus else 1,
    )


class ModelActor:
    """A Ray Data actor's model (loaded once, its fingerprint checked when known) and pipeline."""

    def __init__(
        self,
        model: str,
        fingerprint: str | None,
        cache: bool,
        options: Any,
        device: str | None,
        threads: int | None,
    ) -> None:
        from clamp3.api import Session, load_model
        from clamp3.cache import FeatureCache
        from clamp3.pipeline import Pipeline

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        encoder = load_model(model, device=device, dtype=options.dtype if options is not None else None)
        if fingerprint is not None and encoder.fingerprint != fingerprint:
            raise Clamp3Error(
                f"the workers' '{model}' has weights {encoder.fingerprint[:12]}, expected "
                f"{fingerprint[:12]}: install the same weights on every node"
            )
        self.session = Session(encoder, Pipeline(encoder, FeatureCache() if cache else None, options))


@dataclass
class LocalFiles:
    """An actor's input files as the converters read them."""

    paths: dict[str, Path] = field(default_factory=dict)
    """File (a path or URL, as the driver sent it) -> where it is read here."""
    kinds: dict[str, FileKind] = field(default_factory=dict)
    failures: list[InputError] = field(default_factory=list)
    """URLs that could not be read."""

    def owner(self, path: str) -> tuple[str, str]:
        """The file (as the driver named it) of a local item id or failure path, and the rest (``#2``)."""
        names = {str(local): name for name, local in self.paths.items()} | {
            f.path: f.path for f in self.failures
        }
        file = max((local for local in names if path.startswith(local)), key=len)
        return names[file], path[len(file) :]

    def named(self, failures: list[InputError]) -> list[InputError]:
        """``failures`` of the local copies under their files' names (``copy#2`` -> ``URL#2``)."""
        return [InputError("".join(self.owner(f.path)), f.reason) for f in failures]


def local_files(files: list[str], kinds: list[str], folder: Path) -> LocalFiles:
    """Local paths as they are; each URL copied into its own subfolder of ``folder``, its kind detected
    from the copy (name and content, as for a local file)."""
    result = LocalFiles()
    for index, (name, kind) in enumerate(zip(files, kinds, strict=True)):
        if not is_url(name):
            result.paths[name], result.kinds[name] = Path(name), FileKind(kind)
            continue
        try:
            local = fetch(name, folder / str(index))
        except Exception as exc:  # one file must never stop a batch
            result.failures.append(as_input_error(name, exc))
            continue
        result.paths[name], result.kinds[name] = local, detect_kind(local) or FileKind(kind)
    return result
