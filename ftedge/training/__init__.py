"""Fine-tuning: the transfer-learning recipe, checkpoints/resume, DDP via torchrun."""

from ftedge.training.trainer import TuneResult, tune

__all__ = ["TuneResult", "tune"]
