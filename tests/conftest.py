import os
import sys
from pathlib import Path

# numpy_reference.py and other test helpers live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# Without a GPU the Triton kernels run in Triton's interpreter (tests/test_triton.py). Triton
# reads TRITON_INTERPRET when it is imported, and its own library functions (tl.sum, tl.max,
# ...) are decorated then: if an earlier test module imports it first (torch.compile's
# inductor does), they are compiled functions the interpreter cannot call. So the variable
# is set before any test module is imported.
if "TRITON_INTERPRET" not in os.environ:
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"
