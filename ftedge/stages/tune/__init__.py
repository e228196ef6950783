"""`ftedge tune`: the stage that drives the training library (training/) through FP32
fine-tuning and QAT, writes the run folder and prints its progress."""

from ftedge.stages.tune.trainer import TuneResult, tune

__all__ = ["TuneResult", "tune"]
