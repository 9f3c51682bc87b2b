"""Evaluation: validation loss/perplexity per token family, and music metrics of generated
and real songs (MusPy / mgeval / Museformer definitions) with their gaps."""

from meloformer.evaluate.continuation import continuation_metrics
from meloformer.evaluate.evaluate import (
    EvaluateConfig,
    cropped,
    evaluate,
    music_metrics,
    same_instruments,
    spread_subset,
    summary_line,
    validation_songs,
)
from meloformer.evaluate.loss import family_loss
from meloformer.evaluate.memorisation import memorised_share, train_span_keys
from meloformer.evaluate.metrics import (
    SONG_METRICS,
    Piece,
    empty_beat_rate,
    note_density,
    pitch_class_entropy,
    polyphony,
    scale_consistency,
)
from meloformer.evaluate.similarity import similarity_curve, similarity_error
from meloformer.evaluate.steering import SPAN_BARS, steering_report

__all__ = [
    "SONG_METRICS",
    "SPAN_BARS",
    "EvaluateConfig",
    "Piece",
    "continuation_metrics",
    "cropped",
    "empty_beat_rate",
    "evaluate",
    "family_loss",
    "memorised_share",
    "music_metrics",
    "same_instruments",
    "note_density",
    "pitch_class_entropy",
    "polyphony",
    "scale_consistency",
    "similarity_curve",
    "similarity_error",
    "spread_subset",
    "steering_report",
    "summary_line",
    "train_span_keys",
    "validation_songs",
]
