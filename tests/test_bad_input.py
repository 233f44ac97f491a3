"""Bad input to ff.ewald: each case raises a ValueError that names the problem."""

from __future__ import annotations

import numpy as np
import pytest

import farfield as ff


def _nacl() -> ff.System:
    cell = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    return ff.System([[0.0, 0, 0], [1.0, 0, 0]], [11, 17], cell)


def test_nan_charges() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        ff.ewald(_nacl(), [np.nan, 1.0])


def test_nan_positions() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        ff.ewald(ff.System([[np.nan, 0, 0]], [1]), [1.0])


def test_wrong_charge_shape() -> None:
    with pytest.raises(ValueError, match="charges must have shape"):
        ff.ewald(_nacl(), [[1.0, -1.0]])


def test_charge_count_mismatch() -> None:
    with pytest.raises(ValueError, match=r"charges must have shape \(2,\)"):
        ff.ewald(_nacl(), [1.0, -1.0, 0.0])


def test_wrong_position_shape() -> None:
    with pytest.raises(ValueError, match="positions must have shape"):
        ff.ewald(ff.System(np.zeros((2, 2)), [1, 1]), [1.0, -1.0])


def test_singular_cell() -> None:
    with pytest.raises(ValueError, match="singular"):
        ff.ewald(ff.System([[0.0, 0, 0]], [1], np.diag([1.0, 1.0, 0.0])), [1.0])


@pytest.mark.parametrize("p", [0.0, -1.0, np.nan])
def test_bad_exponent(p: float) -> None:
    with pytest.raises(ValueError, match="exponent"):
        ff.ewald(_nacl(), [1.0, -1.0], exponent=p)


def test_p3_with_net_charge() -> None:
    with pytest.raises(ValueError, match="diverge"):
        ff.ewald(_nacl(), [1.0, 2.0], exponent=3.0)
    # neutral is fine
    ff.ewald(_nacl(), [1.0, -1.0], exponent=3.0)


@pytest.mark.parametrize("accuracy", [0.0, -1e-3, 1.0, 5.0, 1e-20, np.nan])
def test_accuracy_out_of_range(accuracy: float) -> None:
    with pytest.raises(ValueError, match="accuracy"):
        ff.ewald(_nacl(), [1.0, -1.0], accuracy=accuracy)


def test_overlapping_atoms() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ff.ewald(ff.System([[0.0, 0, 0], [0.0, 0, 1e-10]], [1, 1]), [1.0, -1.0])


@pytest.mark.parametrize("name", ["smearing", "cutoff", "k_cutoff"])
@pytest.mark.parametrize("value", [0.0, -1.0, np.inf])
def test_bad_overrides(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        ff.ewald(_nacl(), [1.0, -1.0], **{name: value})


def test_bad_method() -> None:
    with pytest.raises(ValueError, match="method"):
        ff.ewald(_nacl(), [1.0, -1.0], method="fmm")
    with pytest.raises(ValueError, match="method"):
        ff.ewald(_nacl(), [1.0, -1.0], method="direct")
    with pytest.raises(ValueError, match="method"):
        ff.ewald(ff.System([[0.0, 0, 0]], [1]), [1.0], method="ewald")


def test_missing_charges_for_system() -> None:
    with pytest.raises(ValueError, match="charges"):
        ff.ewald(_nacl())
