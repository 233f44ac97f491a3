"""The QEq teacher/student example (power-spectrum χ model fitted through the solve) on a small
subset: the analytic gradient of the loss matches finite differences and the fit improves."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_teacher_example_quick(capsys):
    path = Path(__file__).parents[1] / "examples" / "qeq_teacher.py"
    spec = importlib.util.spec_from_file_location("qeq_teacher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(n_structures=8, maxiter=8)
    assert report["grad_error_0"] < 1e-5 and report["grad_error_5"] < 1e-5
    assert report["charge_rmse_train"] < 0.5 * report["charge_rmse_before"]
    assert "charge RMSE" in capsys.readouterr().out
