import sys
from pathlib import Path

# numpy_reference.py and other test helpers live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# The Triton kernels run on the CPU through Triton's interpreter (tests/test_triton.py). It
# must be chosen before anything imports triton, and torch._dynamo (test_compile.py, collected
# first) imports it: set here, for the whole session, when there is no GPU.
import os  # noqa: E402

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
