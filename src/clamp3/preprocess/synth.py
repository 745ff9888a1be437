"""MIDI to audio with the FluidSynth program and a General MIDI sound font."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from clamp3.errors import Clamp3Error, InputError

FLUID_R3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
"""FluidR3 GM (MIT, Debian ``fluid-soundfont-gm``): the open-data training sound font."""
RENDER_TIMEOUT = 120
"""Seconds one FluidSynth run may take."""


def can_render(soundfont: Path = FLUID_R3) -> bool:
    """Whether FluidSynth and the sound font are installed."""
    return shutil.which("fluidsynth") is not None and soundfont.is_file()


def render(
    midi: mido.MidiFile,
    soundfont: Path,
    sample_rate: int,
    seconds: float,
    reverb: bool = False,
    name: str = "<midi>",
) -> np.ndarray:
    """The first ``seconds`` of the MIDI rendered by FluidSynth: mono float32 at ``sample_rate``."""
    if shutil.which("fluidsynth") is None:
        raise Clamp3Error("rendering audio needs the fluidsynth program (apt-get install fluidsynth)")
    if not soundfont.is_file():
        raise Clamp3Error(f"{soundfont}: sound font not found")
    with tempfile.TemporaryDirectory(prefix="clamp3-render-") as tmp:
        source, target = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.save(str(source))
        command = [
            "fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(sample_rate),
            "-o", f"synth.reverb.active={'1' if reverb else '0'}", "-o", "synth.chorus.active=0",
            "-o", "synth.dynamic-sample-loading=1",
            "-F", str(target), "-T", "wav", str(soundfont), str(source),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, timeout=RENDER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise InputError(name, f"fluidsynth ran longer than {RENDER_TIMEOUT} s") from None
        if done.returncode != 0 or not target.is_file():
            reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise InputError(name, f"fluidsynth failed: {reason[0]}")
        samples, rate = sf.read(
            str(target), dtype="float32", frames=int(seconds * sample_rate), always_2d=True
        )
    if rate != sample_rate:
        raise InputError(name, f"fluidsynth wrote {rate} Hz instead of {sample_rate} Hz")
    return samples.mean(axis=1)
