"""Puts the repository's ``examples/`` on ``sys.path``: the ML helpers (PCA, ridge, the MLP ψ)
live in ``examples/ml_helpers.py``, not in the ``farfield`` package.

    from examples_path import ml_helpers
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

ml_helpers = importlib.import_module("ml_helpers")
