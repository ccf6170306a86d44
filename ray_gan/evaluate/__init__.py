"""Evaluation of a trained model against a split of its dataset: FID, KID,
precision/recall, density/coverage, per-style FID and diversity, style accuracy (a
classifier fitted on the real train split) and a memorisation audit. See
``evaluate.py`` for the data flow and ``report.py`` for what the report holds."""

from ray_gan.evaluate.evaluate import EvalConfig, ImageSource, evaluate_model, run_evaluation
from ray_gan.evaluate.report import EvalReport

__all__ = ["EvalConfig", "EvalReport", "ImageSource", "evaluate_model", "run_evaluation"]
