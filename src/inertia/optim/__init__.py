"""inertia's optimizers: drop-in ``torch.optim.Optimizer`` subclasses.

Each algorithm is a chain of gradient transformations (:mod:`inertia.optim.transforms`);
the classes only manage state and parameter groups (:mod:`inertia.optim.base`).
"""
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam_variants import NAdam, RAdam, Adamax
from ..engine import NonFiniteGradientError
from .base import Optimizer
from .factory import create
from .groups import param_groups_layer_decay, param_groups_muon, param_groups_weight_decay
from .layerwise import LAMB, LARS
from .lion import Lion
from .muon import Muon
from .rmsprop import RMSprop
from .schedulefree import AdamWScheduleFree, SGDScheduleFree
from .sgd import SGD, Momentum

__all__ = ["Optimizer", "NonFiniteGradientError", "SGD", "Momentum", "RMSprop", "Adam", "AdamW",
           "Adagrad", "Lion", "LAMB", "LARS", "NAdam", "RAdam", "Adamax", "Adadelta", "Muon", "Adafactor",
           "AdamWScheduleFree", "SGDScheduleFree", "create", "param_groups_weight_decay",
           "param_groups_layer_decay", "param_groups_muon"]
