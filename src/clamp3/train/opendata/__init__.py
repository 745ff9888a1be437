"""The open-data training set of the bundled default model: licence-clean music21 corpus pieces with
their music (interleaved ABC, MIDI, MTF) and descriptions in twelve languages.

* :mod:`.corpus`: which pieces may be used (training: Ryan's, O'Neill's, Aird's, miscFolk, Bach
  chorales; evaluation only: Essen) and the metadata their files carry;
* :mod:`.analysis`: cheap music21 analysis (key, meter, ambitus, size, texture, scale) and MIDI;
* :mod:`.describe` with ``templates.json``: description lines per language, from those facts only;
* :mod:`.build`: the resumable builder, ``python -m clamp3.train.opendata.build OUT_DIR``.

Needs music21 (tested with 10.5.1), imported on first use.
"""

from clamp3.train.opendata.corpus import (
    COLLECTIONS,
    EVALUATION_ONLY,
    TRAINING_COLLECTIONS,
    EvaluationOnlyError,
    Metadata,
    Piece,
    check_training,
    collection_pieces,
    count_tunes,
    evaluation_pieces,
    training_pieces,
)
from clamp3.train.opendata.describe import Facts, Templates, describe, facts_for

__all__ = [
    "COLLECTIONS",
    "EVALUATION_ONLY",
    "TRAINING_COLLECTIONS",
    "EvaluationOnlyError",
    "Facts",
    "Metadata",
    "Piece",
    "Templates",
    "check_training",
    "collection_pieces",
    "count_tunes",
    "describe",
    "evaluation_pieces",
    "facts_for",
    "training_pieces",
]
