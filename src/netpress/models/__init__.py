"""Model registry: LeNet-300-100, LeNet-5 (Caffe), Conv-2/4/6; any nn.Module works elsewhere in netpress."""
from netpress.models.base import (INITS, MODELS, ModelHparams, build_model, check_forward, check_spec, initialise,
                                   model_from_spec, spec_parameters)
from netpress.models import conv, lenet  # noqa: F401  (registers the models)

__all__ = ["INITS", "MODELS", "ModelHparams", "build_model", "check_forward", "check_spec", "initialise", "model_from_spec",
           "spec_parameters"]
