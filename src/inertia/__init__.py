"""inertia: gradient-descent optimizers for PyTorch, and a lab to compare them."""
from . import schedules
from .data import minibatches
from .optim import (
    LAMB, LARS, SGD, Adadelta, Adafactor, Adagrad, Adam, Adamax, AdamW, Lion, Momentum, Muon,
    AdamWScheduleFree, NAdam, NonFiniteGradientError, RAdam, RMSprop, SGDScheduleFree, create,
    param_groups_layer_decay, param_groups_muon, param_groups_weight_decay,
)

__version__ = "0.1.0"
__all__ = ["SGD", "Momentum", "RMSprop", "Adam", "AdamW", "Adagrad", "Lion", "LAMB", "LARS",
           "NAdam", "RAdam", "Adamax", "Adadelta", "Muon", "Adafactor",
           "AdamWScheduleFree", "SGDScheduleFree", "create", "param_groups_weight_decay",
           "param_groups_layer_decay", "param_groups_muon",
           "NonFiniteGradientError", "minibatches", "schedules", "__version__"]
