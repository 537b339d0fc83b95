import os
import sys
from pathlib import Path

# numpy_reference.py and other test helpers live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))

# Without a GPU, Triton's interpreter runs the GPU kernels on the CPU (tests/test_triton.py).
# Triton reads this once, when it is first imported (torch's inductor imports it too), so it
# is set before any test module loads. With a GPU the kernels run for real instead.
import torch  # noqa: E402

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
