"""``clamp3 demo``: embed a few inputs of every modality and print their cosine similarities."""

from __future__ import annotations

import click
import numpy as np
from rich.console import Console
from rich.table import Table

_TUNES = {
    "scale.abc": "X:1\nL:1/8\nM:4/4\nK:C\nV:1\n[V:1]CDEF GABc|[V:1]cBAG FEDC|[V:1]C8|]\n",
    "waltz.abc": "X:1\nL:1/8\nM:3/4\nK:G\nV:1\n[V:1]G2 B2 d2|[V:1]c2 A2 F2|[V:1]G6|]\n",
    "reel.abc": "X:1\nL:1/8\nM:4/4\nK:D\nV:1\n[V:1]dAFA dAFA|[V:1]BGEG BGEG|[V:1]d2 fd e2 ce|[V:1]d8|]\n",
}
_TEXTS = ["A bright major scale on the piano.", "A gentle waltz in three four time.", "A fast Irish reel."]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


@click.command()
@click.option("--model", "model_name", required=True, help="Model name or path to embed with.")
def demo(model_name: str) -> None:
    """Embed sample texts, tunes and audio features and print their similarities."""
    from clamp3 import CLaMP3, Clamp3Error

    console = Console()
    try:
        model = CLaMP3.from_pretrained(model_name)
    except Clamp3Error as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"model: [bold]{model_name}[/bold] (embedding size {model.embedding_dim})")

    names = list(_TUNES)
    vectors = [model.encode_symbolic(list(_TUNES.values()))]
    try:
        vectors.append(model.encode_text(_TEXTS))
        names += [f"text: {t[:24]}" for t in _TEXTS]
    except Clamp3Error:
        vocab = model.config.text.encoder.vocab_size
        ids = [
            [0, *np.random.default_rng(i).integers(4, vocab, size=6 + 3 * i).tolist(), 2] for i in range(3)
        ]
        vectors.append(model.encode_text_ids(ids))
        names += [f"text ids #{i}" for i in range(3)]
    dim = model.config.audio.encoder.hidden_size
    audio = [np.random.default_rng(10 + i).normal(size=(3 + i, dim)).astype(np.float32) for i in range(2)]
    vectors.append(model.encode_audio_features(audio))
    names += [f"audio #{i} ({len(a)} windows)" for i, a in enumerate(audio)]

    for kind, block in zip(("symbolic", "text", "audio"), vectors, strict=True):
        console.print(f"{kind}: vectors of shape {block.shape}")
    local = model.encode_symbolic([_TUNES["scale.abc"]], global_features=False)[0]
    console.print(f"per-position features of scale.abc: shape {local.shape}")

    everything = np.concatenate(vectors)
    similarity = _cosine(everything, everything)
    table = Table("cosine", *[str(i) for i in range(len(names))], title="cosine similarity")
    for i, name in enumerate(names):
        table.add_row(f"{i} {name}", *[f"{v:+.2f}" for v in similarity[i]])
    console.print(table)
