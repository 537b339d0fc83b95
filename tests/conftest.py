import sys
from pathlib import Path

# numpy_reference.py and other test helpers live beside the tests.
sys.path.insert(0, str(Path(__file__).parent))
