"""The built wheel on its own: installed into a fresh virtual environment (no source tree on the
path), it runs the README quickstart of every engine and gets numbers checked against
independent values. Slow (a release build first): ``make test-wheel`` builds the wheel and sets
``FARFIELD_TEST_WHEEL`` to it; without that variable the test is skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

WHEEL = os.environ.get("FARFIELD_TEST_WHEEL")

pytestmark = [
    pytest.mark.wheel,
    pytest.mark.skipif(not WHEEL, reason="set FARFIELD_TEST_WHEEL=path/to/wheel (make test-wheel)"),
]

# NaCl rock-salt Madelung constant (nearest-neighbour distance), converged value
MADELUNG_NACL = 1.747564594633182

QUICKSTART = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import farfield as ff
    from ase.build import bulk, molecule
    from farfield import structures

    out = {"file": ff.__file__, "version": ff.__version__}

    # Ewald quickstart
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    result = ff.ewald(atoms, charges=[1.0, -1.0], accuracy=1e-6, prefactor=ff.units.EV_ANGSTROM)
    out["ewald_energy"] = result.energy
    out["ewald_method"] = result.parameters.method
    ewald_gauss = ff.ewald(atoms, charges=[1.0, -1.0], accuracy=1e-10).energy
    out["ewald_gaussian"] = ewald_gauss

    # PME quickstart: a 4x4x4 rock-salt supercell, against Ewald's energy per pair
    big = bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (3, 3, 3)
    charges = [1.0 if z == 11 else -1.0 for z in big.numbers]
    pme = ff.pme(big, charges, accuracy=1e-6)
    out["pme_energy_per_pair"] = pme.energy / (len(big) / 2)
    out["pme_mesh"] = list(pme.parameters.mesh)

    # SOAP quickstart
    frames = [molecule("H2O"), molecule("CH4")]
    calc = ff.PowerSpectrum(cutoff=5.0, max_radial=5, max_angular=4, smearing=0.3,
                            cutoff_function="shifted_cosine", cutoff_width=0.5)
    soap = calc.compute(frames, gradients=["positions"])
    out["soap_shape"] = list(soap.values.shape)
    # rotation invariance of the power spectrum
    rotated = [f.copy() for f in frames]
    for f in rotated:
        f.rotate(37, "x"); f.rotate(71, "z")
    out["soap_rotation"] = float(np.abs(calc.compute(rotated).values - soap.values).max())

    # QEq quickstart: the charges sum to the total charge
    qeq = ff.QEq(electronegativity={"Na": -1.0, "Cl": 1.5}, hardness={"Na": 6.0, "Cl": 5.0},
                 sigma={"Na": 0.8, "Cl": 1.0}, total_charge=0.0,
                 prefactor=ff.units.EV_ANGSTROM)
    r = qeq.compute(bulk("NaCl", "rocksalt", a=5.64, cubic=True))
    out["qeq_charge_sum"] = float(r.charges.sum())
    out["qeq_na"] = float(r.charges[0])

    # LODE quickstart: translation invariance of a periodic frame
    lode = ff.LodeSphericalExpansion(exponent=1, smearing=1.0, max_angular=2, max_radial=2,
                                     radius=3.0, basis="gto")
    cell = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    moved = cell.copy(); moved.translate([0.3, -0.2, 0.7])
    a = lode.compute([cell]).values
    b = lode.compute([moved]).values
    out["lode_shape"] = list(a.shape)
    out["lode_translation"] = float(np.abs(a - b).max())

    # triplet quickstart: B8 +/- are told apart by the triplets, not by the bispectrum
    plus, minus = structures.b8_pair()
    tf = ff.TripletFeatures(cutoff=2.0, species=[5])
    rows = tf.compute([plus, minus], centers=[0])
    s = rows.samples[:, 0]
    tp, tm = np.sort(rows.values[s == 0], axis=0), np.sort(rows.values[s == 1], axis=0)
    out["triplet_distance"] = float(np.abs(tp - tm).max() / np.abs(tp).max())
    bis = ff.Bispectrum(species=[5]).compute([plus, minus], centers=[0]).values
    out["bispectrum_distance"] = float(np.abs(bis[0] - bis[1]).max() / np.abs(bis).max())
    print(json.dumps(out))
    """
)


def _run(command: list[str], cwd: Path, timeout: float = 900) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_is_abi3_and_declares_extras() -> None:
    assert WHEEL is not None
    name = Path(WHEEL).name
    assert "-cp310-abi3-" in name, name
    with zipfile.ZipFile(WHEEL) as wheel:
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
        assert not any(n.startswith(("tests/", "rust/")) for n in wheel.namelist())
    for extra in ("ase", "dask", "progress", "plot"):
        assert f"Provides-Extra: {extra}" in text
    assert "Requires-Python: >=3.10" in text


def test_wheel_quickstarts_in_a_fresh_venv(tmp_path: Path) -> None:
    assert WHEEL is not None
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / ("Scripts" if os.name == "nt" else "bin") / "python")
    _run([python, "-m", "pip", "install", "-q", f"{Path(WHEEL).resolve()}[ase]"], tmp_path)
    script = tmp_path / "quickstart.py"
    script.write_text(QUICKSTART)
    # run from an empty directory with a clean environment: no source tree on the path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [python, "-I", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(out["file"]).resolve().is_relative_to(venv.resolve())
    d = 5.64 / 2
    # Ewald: the Madelung energy of rock salt, -M/d per ion pair (Gaussian units and eV)
    assert out["ewald_gaussian"] == pytest.approx(-MADELUNG_NACL / d, rel=1e-9)
    assert out["ewald_energy"] == pytest.approx(-MADELUNG_NACL / d * 14.399645478425667, rel=1e-5)
    assert out["pme_energy_per_pair"] == pytest.approx(-MADELUNG_NACL / d, rel=1e-4)
    assert out["soap_shape"][0] == 8 and out["soap_rotation"] < 1e-10
    assert abs(out["qeq_charge_sum"]) < 1e-9 and out["qeq_na"] > 0.0
    assert out["lode_shape"][0] == 8 and out["lode_translation"] < 1e-10
    assert out["bispectrum_distance"] < 1e-8 < 1e-3 < out["triplet_distance"]
