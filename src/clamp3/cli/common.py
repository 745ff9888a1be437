"""Options and reporting shared by the commands that embed files."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from clamp3.errors import Clamp3Error, InputError

DTYPE_CHOICES = ("float32", "bf16", "fp16", "int8")
"""What ``--dtype`` takes (:func:`clamp3.precision.precision_name`'s names; not imported, so that
``--help`` loads no torch)."""

_MODEL_OPTIONS = (
    click.option(
        "-m",
        "--model",
        default=None,
        help="Model name (default, saas, c2, clamp1-s512, ...) or path [saas if downloaded, else default].",
    ),
    click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [cuda if available]."),
    click.option(
        "--dtype",
        type=click.Choice(DTYPE_CHOICES),
        default="float32",
        show_default=True,
        help="Precision: int8 runs the model (and MERT) with int8 linear layers, for CPUs; vectors of "
        "different precisions are cached apart.",
    ),
    click.option("--no-cache", is_flag=True, help="Do not read or write the feature cache."),
    click.option(
        "--mert",
        default="mert-v1-95m",
        show_default=True,
        help="MERT model name or folder (audio, for saas and c2).",
    ),
    click.option(
        "--captioner", default="blip-base", show_default=True, help="Captioner name or folder (images)."
    ),
    click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
    click.option(
        "--limit",
        "limits",
        multiple=True,
        metavar="NAME=VALUE",
        help="Change an input size limit, e.g. max_text_chars=500000 or max_audio_seconds=none (repeatable; "
        "names in clamp3.limits.InputLimits).",
    ),
    click.option("--quiet", is_flag=True, help="No progress bars."),
)


def model_options(command: Callable) -> Callable:
    """Add the model/pipeline options; the command receives them as ``model_args``, the keyword
    arguments of the :mod:`clamp3.api` functions (``model``, ``device``, ``cache``, ``options``)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from clamp3.limits import InputLimits
        from clamp3.pipeline import PipelineOptions

        try:
            limits = InputLimits().with_settings(kwargs.pop("limits"))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--limit") from None
        options = PipelineOptions(
            limits=limits,
            mert=kwargs.pop("mert"),
            captioner=kwargs.pop("captioner"),
            batch_size=kwargs.pop("batch_size"),
            show_progress=not kwargs.pop("quiet"),
            dtype=kwargs.pop("dtype"),
        )
        model_args = {
            "model": kwargs.pop("model"),
            "device": kwargs.pop("device"),
            "cache": not kwargs.pop("no_cache"),
            "options": options,
        }
        return command(*args, model_args=model_args, **kwargs)

    for option in reversed(_MODEL_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def _ray_address(value: str | None) -> str | None:
    """``--ray``'s value, refused when it is no Ray address (``--ray`` took a PATH or URL as its value)."""
    if value is None or value in ("local", "auto") or value.startswith("ray://"):
        return value
    if re.fullmatch(r"[\w.-]+:\d+", value):
        return value
    raise click.BadParameter(
        f"'{value}' is not a Ray address (auto, HOST:PORT, ray://HOST:PORT); put --ray after the paths "
        "or write --ray=ADDRESS"
    )


_RAY_OPTIONS = (
    click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="local",
        default=None,
        metavar="[ADDRESS]",
        callback=lambda _ctx, _param, value: _ray_address(value),
        help="Embed on Ray: a cluster's ADDRESS (ray://head:10001, auto), or a local runtime without one.",
    ),
    click.option(
        "--ray-workers", type=click.IntRange(min=1), default=2, show_default=True, help="Model actors on Ray."
    ),
    click.option(
        "--ray-gpus",
        type=click.FloatRange(min=0),
        default=None,
        help="GPUs per actor, e.g. 0.5 for two actors a GPU [1 with --device cuda or a cluster with GPUs].",
    ),
)


def ray_options(command: Callable) -> Callable:
    """Add ``--ray [ADDRESS]``, ``--ray-workers`` and ``--ray-gpus``; the command receives
    ``ray_address`` (``None`` without ``--ray``), ``ray_workers`` and ``ray_gpus``."""
    for option in reversed(_RAY_OPTIONS):
        command = option(command)
    return command


def _pairs(value: str, option: str) -> list[tuple[float, float]]:
    """``4:2,8:4`` -> ``[(4, 2), (8, 4)]`` (window size and hop)."""
    try:
        pairs = [tuple(float(x) for x in part.split(":")) for part in value.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise click.BadParameter(
            f"'{value}': write SIZE:HOP pairs separated by commas, e.g. 4:2,8:4", param_hint=option
        )
    return pairs


_WINDOW_OPTIONS = (
    click.option(
        "--bar-windows",
        default=None,
        metavar="SIZE:HOP,...",
        help="Windows of sheet music, in bars [4:2,8:4].",
    ),
    click.option(
        "--second-windows",
        default=None,
        metavar="SIZE:HOP,...",
        help="Windows of MIDI and audio, in seconds [6:3,12:6].",
    ),
)


def window_options(command: Callable) -> Callable:
    """Add ``--bar-windows`` and ``--second-windows``; the command receives ``windows``, a
    :class:`~clamp3.preprocess.windows.WindowSettings` (the default sizes where not given)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from clamp3.preprocess.windows import WindowSettings

        bars, seconds = kwargs.pop("bar_windows"), kwargs.pop("second_windows")
        default = WindowSettings()
        try:
            windows = WindowSettings(
                tuple((int(a), int(b)) for a, b in _pairs(bars, "--bar-windows")) if bars else default.bars,
                tuple(_pairs(seconds, "--second-windows")) if seconds else default.seconds,
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--bar-windows/--second-windows") from None
        return command(*args, windows=windows, **kwargs)

    for option in reversed(_WINDOW_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


_SEGMENT_SEARCH_OPTIONS = (
    click.option(
        "--segments",
        is_flag=True,
        help="Also match the pieces' passages (windows of bars or seconds): each hit names its best passage.",
    ),
    click.option(
        "--combine",
        type=click.Choice(["max", "global", "window", "mean"]),
        default="max",
        show_default=True,
        help="With --segments, a piece's score from its global and best-passage scores.",
    ),
)


def segment_search_options(command: Callable) -> Callable:
    """Add ``--segments`` and ``--combine``; the command receives ``segments`` and ``combine``."""
    for option in reversed(_SEGMENT_SEARCH_OPTIONS):
        command = option(command)
    return command


def friendly_errors(command: Callable) -> Callable:
    """Turn clamp3's own errors into one ``Error: ...`` line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Clamp3Error as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def report_problems(failures: Iterable[InputError], skipped: Iterable[Path] = ()) -> bool:
    """Print skipped and failed files to stderr; True when something failed."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    for path in skipped:
        console.print(f"skipped (unrecognised file): {path}", style="yellow", markup=False)
    failures = list(failures)
    for failure in failures:
        console.print(f"failed: {failure}", style="red", markup=False)
    if failures:
        console.print(f"{len(failures)} file(s) failed", style="red", markup=False)
    return bool(failures)
