"""Training: typed hyperparameters, a deterministic resumable trainer, evaluation."""
from netpress.train.evaluate import EvalResult, correctness, evaluate, output_width, resolve_device
from netpress.train.hparams import TrainingHparams
from netpress.train.schedule import lr_multiplier
from netpress.train.trainer import Callback, TrainingDiverged, TrainResult, clone_model, cross_entropy, make_optimizer, train

__all__ = ["EvalResult", "correctness", "evaluate", "output_width", "resolve_device", "TrainingHparams", "lr_multiplier", "Callback",
           "TrainingDiverged", "TrainResult", "clone_model", "cross_entropy", "make_optimizer", "train"]
