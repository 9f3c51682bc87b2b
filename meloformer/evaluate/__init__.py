"""Evaluation: validation loss/perplexity per token family, and music metrics of generated
and real songs (MusPy / mgeval / Museformer definitions) with their gaps."""

from meloformer.evaluate.evaluate import EvaluateConfig, evaluate, music_metrics
from meloformer.evaluate.loss import family_loss
from meloformer.evaluate.metrics import SONG_METRICS, Piece
from meloformer.evaluate.similarity import similarity_curve, similarity_error

__all__ = [
    "SONG_METRICS",
    "EvaluateConfig",
    "Piece",
    "evaluate",
    "family_loss",
    "music_metrics",
    "similarity_curve",
    "similarity_error",
]
