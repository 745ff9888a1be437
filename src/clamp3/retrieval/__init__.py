"""Vector-level retrieval: feature folders, search, evaluation metrics, scores and classification.

Everything here works on float32 vectors (``FeatureSet``), whatever produced them; torch is needed
only to train a ``LinearProbe`` and matplotlib only for the PNG plots in ``clamp3.retrieval.plots``.
"""

from clamp3.retrieval.errors import (
    DimensionMismatchError,
    FeatureFolderError,
    MissingDependencyError,
    ModelMismatchError,
    UnmatchedKeysError,
)
from clamp3.retrieval.evaluate import EvalResult, RankRecord, RetrievalMetrics, evaluate
from clamp3.retrieval.features import (
    FeatureSet,
    KeyMatch,
    feature_key,
    load_features,
    match_keys,
    read_feature_folder,
    same_model,
)
from clamp3.retrieval.labels import labels_for, labels_from_filenames, read_labels_csv
from clamp3.retrieval.metrics import ClassificationReport, classification_report
from clamp3.retrieval.probe import EpochScore, LinearProbe, ProbeConfig, ProbeReport
from clamp3.retrieval.reports import write_pairs_csv, write_ranks_jsonl
from clamp3.retrieval.score import GroupScore, PairScore, PairwiseScore, group_score, pairwise_score, score
from clamp3.retrieval.search import SearchHit, TopK, VectorIndex, top_k
from clamp3.retrieval.vector_files import is_vector_file, read_vector_file
from clamp3.retrieval.zero_shot import ZeroShotClassifier, default_templates, template_languages

__all__ = [
    "ClassificationReport",
    "DimensionMismatchError",
    "EpochScore",
    "EvalResult",
    "FeatureFolderError",
    "FeatureSet",
    "GroupScore",
    "KeyMatch",
    "LinearProbe",
    "MissingDependencyError",
    "ModelMismatchError",
    "PairScore",
    "PairwiseScore",
    "ProbeConfig",
    "ProbeReport",
    "RankRecord",
    "RetrievalMetrics",
    "SearchHit",
    "TopK",
    "UnmatchedKeysError",
    "VectorIndex",
    "ZeroShotClassifier",
    "classification_report",
    "default_templates",
    "evaluate",
    "feature_key",
    "group_score",
    "is_vector_file",
    "labels_for",
    "labels_from_filenames",
    "load_features",
    "match_keys",
    "pairwise_score",
    "read_feature_folder",
    "read_labels_csv",
    "read_vector_file",
    "same_model",
    "score",
    "template_languages",
    "top_k",
    "write_pairs_csv",
    "write_ranks_jsonl",
]
