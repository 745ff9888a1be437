"""What the text tower can carry to languages no template used, measured on the held-out test tunes.

    python evaluation/text_transfer.py WORK [--data OPEN_DATA] [--model default] [--top-layer] \\
        > evaluation/text_transfer.json

``WORK`` is the folder ``clamp3 train default-model --work`` wrote (its cached backbone vectors of the
training texts are reused), ``OPEN_DATA`` its open-data set if it was built elsewhere. Every number is
text->ABC MRR over the test tunes with the short queries of ``evaluation/default_model.py``: English,
and Swedish, Turkish and Vietnamese, which no training template used.

* ``names``: the bundled model with the unseen-language queries as they are, with their key written the
  English way ("Sol majör" -> "G major") and with their tune type written the English way.
* ``heads``: text projections trained again on the cached backbone vectors, against the bundled model's
  fixed ABC vectors (CLIP loss, 30 epochs, batch 64, seeds 0 and 1): as the recipe does it; with the
  backbone's language-difference directions projected out first (the top ``k`` principal directions of
  each tune's translated-minus-English vector); with a term that pulls a tune's English and translated
  projections together; with two more variants per tune whose key is named the way of another training
  language (code-switching).
* ``top layer`` (``--top-layer``, about 20 minutes): the backbone's last layer trained as well
  (learning rate 3e-5, 4 epochs) on the English and translated texts.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from clamp3.encoder import CLaMP3
from clamp3.model.towers import masked_mean
from clamp3.retrieval.evaluate import metrics_from_ranks, target_ranks
from clamp3.train.default_model.inputs import Piece, read_pieces, text_path, text_variants
from clamp3.train.default_model.settings import DefaultModelSettings
from clamp3.train.distributed import ProcessGroup
from clamp3.train.loss import clip_loss
from clamp3.train.opendata.describe import Templates

LANGUAGES = ("en", "sv", "tr", "vi")
SEEDS = (0, 1)
EPOCHS = 30
BATCH = 64


def _default_model_script():
    path = Path(__file__).with_name("default_model.py")
    spec = importlib.util.spec_from_file_location("evaluation_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sets = _default_model_script()


def mrr(queries: np.ndarray, targets: np.ndarray) -> float:
    """MRR of query ``i`` finding target ``i`` by cosine."""
    return metrics_from_ranks(target_ranks(queries, targets, np.arange(len(queries))), ())[0]


def difference_directions(english: np.ndarray, translated: np.ndarray, k: int) -> np.ndarray:
    """``[k, D]`` orthonormal rows: the top principal directions of translated-minus-English vectors."""
    differences = translated - english
    differences = differences - differences.mean(axis=0)
    return np.linalg.svd(differences, full_matrices=False)[2][:k]


def code_switched(text: str, tonic: str, mode: str, lang: str, other: str, templates: Templates) -> str:
    """``text`` (in ``lang``) with its key named the way of ``other``; unchanged if it names none."""
    name, replacement = templates.key_name(tonic, mode, lang), templates.key_name(tonic, mode, other)
    if not name or not replacement:
        return text
    return text.replace(name, replacement)


def train_head(
    vectors: np.ndarray,
    targets: np.ndarray,
    seed: int,
    removed: np.ndarray | None = None,
    consistency: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A linear text projection ``(weight, bias)`` trained with the CLIP loss on ``vectors``
    (``[N, variants, D]``, one variant drawn per item and step) against fixed ``targets`` ``[N, E]``;
    ``removed`` directions are projected out of its input; ``consistency`` weighs a term pulling
    variant 0 (English) and variant 1 (translation) of an item together."""
    torch.manual_seed(seed)
    inputs = torch.from_numpy(vectors).float()
    keep = torch.eye(inputs.shape[-1])
    if removed is not None:
        keep = keep - torch.from_numpy(removed.T @ removed).float()
    head = torch.nn.Linear(inputs.shape[-1], targets.shape[1])
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
    optimizer = torch.optim.AdamW([*head.parameters(), log_scale], lr=1e-3)

    def project(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(head(x @ keep), dim=-1)

    def agreement_loss(chosen: list[int]) -> torch.Tensor:
        agreement = (project(inputs[chosen, 0]) * project(inputs[chosen, 1])).sum(-1)
        return consistency * (1 - agreement).mean()

    _fit_clip(
        lambda chosen, variant: project(inputs[chosen, variant]),
        optimizer,
        log_scale,
        targets,
        inputs.shape[1],
        EPOCHS,
        torch.Generator().manual_seed(seed),
        agreement_loss if consistency else None,
    )
    return (head.weight.detach() @ keep).numpy(), head.bias.detach().numpy()


def _fit_clip(
    embed: Callable[[list[int], list[int]], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    log_scale: torch.nn.Parameter,
    targets: np.ndarray,
    variants: int,
    epochs: int,
    generator: torch.Generator,
    extra_loss: Callable[[list[int]], torch.Tensor] | None = None,
) -> None:
    """Train with the CLIP loss between ``embed(items, variants)`` (L2-normalised) and the fixed
    ``targets`` of those items: batches of :data:`BATCH`, one text variant drawn per item and step."""
    goal = F.normalize(torch.from_numpy(targets).float(), dim=-1)
    group = ProcessGroup()
    for _ in range(epochs):
        order = torch.randperm(len(goal), generator=generator).tolist()
        for start in range(0, len(order) - BATCH + 1, BATCH):
            chosen = order[start : start + BATCH]
            variant = torch.randint(0, variants, (BATCH,), generator=generator).tolist()
            scale = log_scale.exp().clamp(max=100)
            loss = clip_loss(embed(chosen, variant), goal[chosen], scale, group)
            if extra_loss is not None:
                loss = loss + extra_loss(chosen)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


# ------------------------------------------------------------------ the backbone's last layer


def last_layer_inputs(encoder: CLaMP3, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text's token states entering the backbone's last layer (float16, ``[tokens, D]``)."""
    out: list[np.ndarray] = [np.empty(0)] * len(texts)
    with torch.inference_mode():
        for chosen, batch, mask in encoder._text_batches(texts, 32):
            states = encoder.model.text_model(batch, attention_mask=mask, output_hidden_states=True)
            for row, index in enumerate(chosen):
                out[index] = states.hidden_states[-2][row, : int(mask[row].sum())].half().numpy()
    return out


def pooled_by(layer: torch.nn.Module, states: Sequence[np.ndarray]) -> torch.Tensor:
    """The masked mean of ``layer``'s output over padded ``states``."""
    hidden = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(s).float() for s in states], batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(s)) for s in states], batch_first=True)
    additive = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
    output = layer(hidden, attention_mask=additive)
    return masked_mean(output[0] if isinstance(output, tuple) else output, mask)


def train_top_layer(
    encoder: CLaMP3, variants: Sequence[Sequence[np.ndarray]], targets: np.ndarray, queries: dict
) -> dict[str, float]:
    """The backbone's last layer and a new projection trained together; test MRR per query language."""
    torch.manual_seed(0)
    layer = copy.deepcopy(encoder.model.text_model.encoder.layer[-1]).train()
    head = torch.nn.Linear(layer.output.dense.out_features, targets.shape[1])
    log_scale = torch.nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))
    optimizer = torch.optim.AdamW(
        [{"params": [*head.parameters(), log_scale], "lr": 1e-3}, {"params": layer.parameters(), "lr": 3e-5}]
    )

    def embed(chosen: list[int], variant: list[int]) -> torch.Tensor:
        states = [variants[v][i] for v, i in zip(variant, chosen, strict=True)]
        return F.normalize(head(pooled_by(layer, states)), dim=-1)

    _fit_clip(embed, optimizer, log_scale, targets, len(variants), 4, torch.Generator().manual_seed(0))
    layer.eval()
    with torch.inference_mode():
        return {
            lang: mrr(head(pooled_by(layer, states)).numpy(), queries["abc"])
            for lang, states in queries.items()
            if lang != "abc"
        }


# ------------------------------------------------------------------ the measurements


def _relative(scores: dict[str, float]) -> dict[str, float]:
    return {**scores, **{f"{lang} / en": scores[lang] / scores["en"] for lang in LANGUAGES[1:]}}


def _mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}


def run(settings: DefaultModelSettings, model: str, top_layer: bool) -> dict:
    data = settings.data
    torch.set_num_threads(2)
    encoder = CLaMP3.from_pretrained(model, device="cpu")
    templates = Templates.load()
    codes = {name: code for code, name in templates.data["languages"].items()}
    test = read_pieces(data, "test")
    test_records = {r["id"]: r for r in map(json.loads, (data / "test.jsonl").open(encoding="utf-8"))}
    analyses = {p.id: _analysis(p) for p in test}
    abc = encoder.encode_symbolic([p.abc.read_text(encoding="utf-8") for p in test])

    def queries(lang: str, **naming: str) -> list[str]:
        return [sets.query(test_records[p.id], analyses[p.id], lang, **naming) for p in test]

    backbone = {lang: encoder.pooled_text_features(queries(lang)) for lang in LANGUAGES}
    weight = encoder.model.text_proj.weight.detach().numpy()
    bias = encoder.model.text_proj.bias.detach().numpy()

    def scores(w: np.ndarray, b: np.ndarray, vectors: dict[str, np.ndarray]) -> dict[str, float]:
        return _relative({lang: mrr(vectors[lang] @ w.T + b, abc) for lang in LANGUAGES})

    results: dict = {"names": {"as written": scores(weight, bias, backbone)}}
    for what in ("key", "type"):
        swapped = {"en": backbone["en"]}
        swapped.update(
            {
                lang: encoder.pooled_text_features(queries(lang, **{f"{what}_lang": "en"}))
                for lang in LANGUAGES[1:]
            }
        )
        results["names"][f"{what} named in English"] = scores(weight, bias, swapped)

    train = read_pieces(data, "train")
    records = [json.loads(line) for line in (data / "train.jsonl").open(encoding="utf-8")]
    vectors = np.load(text_path(settings, "train"))
    targets = encoder.encode_symbolic([p.abc.read_text(encoding="utf-8") for p in train])
    removed = {k: difference_directions(vectors[:, 0], vectors[:, 1], k) for k in (8, 32)}
    english_and_translated = [text_variants(p.example, 2, settings.seed, p.key) for p in train]
    switched = _code_switched_vectors(encoder, train, english_and_translated, records, templates, codes)
    setups = {
        "as in the recipe": lambda seed: train_head(vectors, targets, seed),
        "language directions removed (k=8)": lambda seed: train_head(vectors, targets, seed, removed[8]),
        "language directions removed (k=32)": lambda seed: train_head(vectors, targets, seed, removed[32]),
        "English/translation consistency": lambda seed: train_head(vectors, targets, seed, consistency=1.0),
        "code-switched key names": lambda seed: train_head(
            np.concatenate([vectors, switched], 1), targets, seed
        ),
    }
    results["heads"] = {}
    for name, train_one in setups.items():
        results["heads"][name] = _mean([scores(*train_one(seed), backbone) for seed in SEEDS])
        print(name, results["heads"][name], file=sys.stderr)
    if top_layer:
        states = [
            last_layer_inputs(encoder, list(column)) for column in zip(*english_and_translated, strict=True)
        ]
        test_states = {lang: last_layer_inputs(encoder, queries(lang)) for lang in LANGUAGES}
        results["top layer"] = _relative(
            train_top_layer(encoder, states, targets, {**test_states, "abc": abc})
        )
    return results


def _analysis(piece: Piece) -> dict:
    return json.loads(piece.abc.with_suffix(".json").read_text(encoding="utf-8"))["analysis"]


def _code_switched_vectors(
    encoder: CLaMP3,
    pieces: list[Piece],
    texts: list[list[str]],
    records: list[dict],
    templates: Templates,
    codes: dict[str, str],
) -> np.ndarray:
    """``[N, 2, D]``: each tune's English and translated text (``texts``), key named as in a random other
    language."""
    rng = np.random.default_rng(0)
    switched: list[list[str]] = [[], []]
    for piece, variants, record in zip(pieces, texts, records, strict=True):
        analysis = _analysis(piece)
        for column, lang in enumerate(("en", codes[record["translations"]["language"]])):
            other = str(rng.choice([code for code in templates.languages if code != lang]))
            tonic, mode = analysis.get("key_tonic"), analysis.get("key_mode")
            text = variants[column]
            if tonic and mode:
                text = code_switched(text, tonic, mode, lang, other, templates)
            switched[column].append(text)
    return np.stack([encoder.pooled_text_features(column) for column in switched], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the recipe's work folder")
    parser.add_argument("--data", type=Path, help="its open-data set (default: WORK/opendata)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--top-layer", action="store_true", help="also train the backbone's last layer")
    args = parser.parse_args()
    settings = DefaultModelSettings(work=args.work, opendata=args.data)
    print(json.dumps(run(settings, args.model, args.top_layer), indent=1))


if __name__ == "__main__":
    main()
