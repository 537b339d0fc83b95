"""inertia: gradient-descent optimizers for PyTorch, and a lab to compare them."""
from . import schedules
from .data import minibatches
from .optim import (
    LAMB, LARS, SGD, Adagrad, Adam, AdamW, Lion, Momentum, NonFiniteGradientError, RMSprop,
)

__version__ = "0.1.0"
__all__ = ["SGD", "Momentum", "RMSprop", "Adam", "AdamW", "Adagrad", "Lion", "LAMB", "LARS",
           "NonFiniteGradientError", "minibatches", "schedules", "__version__"]
