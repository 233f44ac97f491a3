"""The command line: one-line errors (no traceback unless --debug), charges from the file,
--charges or QEq, energy/featurize/qeq/demo/info. Most cases call ``farfield.cli.main``
in-process (a subprocess start costs ~1 s); a few run ``python -m farfield`` as a subprocess.

Numbers are checked against closed forms (the Madelung constant of rock salt, the direct
Coulomb sum of a molecule, the two-atom QEq solution, the virial theorem of 1/r^p, 1 eV =
23.0605 kcal/mol), featomic, finite differences and invariances."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import farfield as ff
from farfield import cli
from farfield.cli import main

ase = pytest.importorskip("ase")
from ase.build import bulk  # noqa: E402
from ase.io import read, write  # noqa: E402

#: Madelung constant of rock salt (per ion pair, nearest-neighbour distance)
MADELUNG_NACL = 1.747564594633182
A_NACL = 5.64


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farfield", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def nacl() -> ase.Atoms:
    return bulk("NaCl", "rocksalt", a=A_NACL)


def madelung_energy(pairs: int = 1) -> float:
    """Rock salt's electrostatic energy in eV: −M k_e / r0 per ion pair, closed form."""
    return -pairs * MADELUNG_NACL * ff.units.EV_ANGSTROM / (A_NACL / 2)


def energies(stdout: str) -> list[float]:
    lines = stdout.strip().splitlines()
    assert lines[0] == "frame,energy_eV,max_force_eV_per_A"
    return [float(line.split(",")[1]) for line in lines[1:]]


def table(stdout: str) -> list[list[str]]:
    return [line.split(",") for line in stdout.strip().splitlines()]


def one_line_error(err: str, *fragments: str) -> None:
    assert err.startswith("farfield: error:"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def fails(capsys: pytest.CaptureFixture[str], argv: list[str], *fragments: str) -> None:
    """``main(argv)`` exits non-zero with one line naming ``fragments``, no traceback."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code  # type: ignore[assignment]
    assert status not in (0, None), argv
    one_line_error(capsys.readouterr().err, *fragments)


# --- the old ``ewald`` subcommand ----------------------------------------------------------


def test_missing_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    p = run("ewald", str(tmp_path / "nope.xyz"), "--quiet")
    assert p.returncode != 0
    one_line_error(p.stderr, "no such file")
    debug = run("--debug", "ewald", str(tmp_path / "nope.xyz"), "--quiet")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_malformed_file_is_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\ncomment\nNa 0 0\nthis is not xyz\n")
    fails(capsys, ["ewald", str(bad), "--quiet"], "bad.xyz")
    fails(capsys, ["energy", str(bad), "--quiet"], "bad.xyz", "cannot read")


@pytest.mark.parametrize(("name", "fmt"), [("nacl.cif", "cif"), ("nacl.xyz", "xyz")])
def test_frames_without_charges_are_an_error(
    tmp_path: Path, name: str, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    write(path, nacl(), format=fmt)
    for command in ("ewald", "energy"):
        fails(capsys, [command, str(path), "--quiet"], "no charges", "--charges")
        assert capsys.readouterr().out == ""


def test_charges_option_per_element(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nacl.cif"
    write(path, nacl(), format="cif")
    for spec in ["Na=1,Cl=-1", '{"Na": 1, "Cl": -1}', " Cl = -1 , Na = 1 "]:
        assert main(["ewald", str(path), "--quiet", "--charges", spec]) == 0
        (energy,) = energies(capsys.readouterr().out)
        assert energy == pytest.approx(madelung_energy(), rel=1e-6)
    p = run("ewald", str(path), "--quiet", "--charges", "Na=1,Cl=-1")  # the real entry point
    assert p.returncode == 0, p.stderr
    assert energies(p.stdout)[0] == pytest.approx(madelung_energy(), rel=1e-6)


def test_charges_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nacl.cif"
    write(path, nacl(), format="cif")
    for spec, message in [
        ("Na=1", "no charge for Cl"),
        ("Na=1,Cl=minus", "must be a number"),
        ("Na:1,Cl:-1", "element=charge"),
        ("Xx=1,Cl=-1", "unknown element"),
        ("{not json", "invalid JSON"),
        ("Na=nan,Cl=-1", "finite"),
        ("", "empty"),
        ("Na=1,Na=2", "twice"),
    ]:
        for command in ("ewald", "energy"):
            fails(capsys, [command, str(path), "--quiet", "--charges", spec], message)


def test_charges_from_an_extended_xyz_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    atoms = nacl()
    atoms.set_initial_charges([1.0, -1.0])
    path = tmp_path / "nacl.extxyz"
    write(path, [atoms, atoms], format="extxyz")
    assert main(["ewald", str(path), "--quiet"]) == 0
    out = energies(capsys.readouterr().out)
    np.testing.assert_allclose(out, [madelung_energy()] * 2, rtol=1e-6)


def test_main_returns_non_zero_for_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ewald", str(tmp_path / "missing.cif"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("farfield: error:")


# --- energy --------------------------------------------------------------------------------


@pytest.fixture
def trajectory(tmp_path: Path) -> Path:
    """Two frames of a 16-atom rock-salt cell with charges: perfect, then rattled."""
    atoms = nacl() * (2, 2, 2)
    atoms.set_initial_charges(np.where(atoms.numbers == 11, 1.0, -1.0))
    rattled = atoms.copy()
    rattled.rattle(0.05, seed=3)
    path = tmp_path / "traj.extxyz"
    write(path, [atoms, rattled], format="extxyz")
    return path


@pytest.fixture
def water(tmp_path: Path) -> Path:
    from ase.build import molecule

    path = tmp_path / "water.xyz"
    write(path, molecule("H2O"), format="xyz")
    return path


def test_energy_table_over_files_units_and_madelung(
    trajectory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cif = tmp_path / "nacl.cif"
    write(cif, nacl(), format="cif")
    argv = ["energy", str(trajectory), str(cif), "--charges", "Na=1,Cl=-1", "--quiet"]
    assert main(argv) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0] == ["file", "frame", "energy_eV", "max_force_eV_per_A"]
    assert [(r[0], r[1]) for r in rows[1:]] == [
        (str(trajectory), "0"),
        (str(trajectory), "1"),
        (str(cif), "0"),
    ]
    e = [float(r[2]) for r in rows[1:]]
    assert e[0] == pytest.approx(madelung_energy(8), rel=1e-6)
    assert e[2] == pytest.approx(madelung_energy(1), rel=1e-6)
    assert float(rows[1][3]) < 1e-8 and float(rows[2][3]) > 0.01  # forces vanish by symmetry
    assert main([*argv, "--units", "kcal/mol", "--method", "pme", "--accuracy", "1e-8"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0][2] == "energy_kcal_per_mol"
    # 1 eV = 23.0605 kcal/mol (CODATA: 96.485332 kJ/mol / 4.184)
    assert float(rows[1][2]) == pytest.approx(madelung_energy(8) * 96.4853321 / 4.184, rel=1e-6)


def test_energy_extxyz_output_forces_stress_and_virial_theorem(
    trajectory: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.extxyz"
    for p in (1.0, 2.5):
        argv = ["energy", str(trajectory), "--exponent", str(p), "--accuracy", "1e-9"]
        assert main([*argv, "-o", str(out), "--quiet"]) == 0
        assert capsys.readouterr().out == ""
        frames = read(out, ":")
        assert len(frames) == 2
        for atoms in frames:
            energy = atoms.get_potential_energy()
            stress = atoms.get_stress(voigt=False)
            # E(λr) = λ^-p E(r) under a uniform scaling: V tr(stress) = dE/dλ = −p E
            assert atoms.get_volume() * np.trace(stress) == pytest.approx(-p * energy, rel=1e-7)
            # extxyz keeps 8 decimals
            np.testing.assert_allclose(atoms.get_forces().sum(axis=0), 0.0, atol=1e-6)
            assert atoms.info["energy_units"] == "eV"
            np.testing.assert_array_equal(atoms.get_charges(), atoms.get_initial_charges())
        # the forces are −∂E/∂x: a central difference of the energy of one atom
        rattled = frames[1]
        h = 1e-4
        shifted = []
        for sign in (1, -1):
            moved = rattled.copy()
            moved.positions[3, 1] += sign * h
            shifted.append(
                ff.ewald(moved, moved.get_initial_charges(), exponent=p, accuracy=1e-10).energy
                * ff.units.EV_ANGSTROM
            )
        derivative = (shifted[0] - shifted[1]) / (2 * h)
        assert rattled.get_forces()[3, 1] == pytest.approx(-derivative, rel=1e-5, abs=1e-7)


def test_energy_npz_output_open_frames_and_direct_sum(
    trajectory: Path, water: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.npz"
    argv = ["energy", str(water), str(trajectory), "--charges", "H=0.4,O=-0.8,Na=1,Cl=-1"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "wrote 3 frames" in capsys.readouterr().err
    data = np.load(out)
    np.testing.assert_array_equal(data["frame_offsets"], [0, 3, 19, 35])
    assert list(data["frame_files"]) == [str(water), str(trajectory), str(trajectory)]
    assert list(data["methods"])[0] == "direct" and str(data["units"]) == "eV"
    assert np.isnan(data["stress"][0]).all() and np.isnan(data["cells"][0]).all()
    assert np.isfinite(data["stress"][1:]).all()
    # the open molecule: the plain Coulomb sum over its three pairs
    pos, q = data["positions"][:3], data["charges"][:3]
    direct = sum(q[i] * q[j] / np.linalg.norm(pos[i] - pos[j]) for i in range(3) for j in range(i))
    assert data["energy"][0] == pytest.approx(direct * ff.units.EV_ANGSTROM, rel=1e-12)
    assert data["energy"][1] == pytest.approx(madelung_energy(8), rel=1e-6)


def test_energy_errors(
    trajectory: Path, water: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails(capsys, ["energy", str(trajectory), "-o", str(tmp_path / "x.txt")], "output format")
    fails(capsys, ["energy", str(trajectory), "-o", str(tmp_path / "no" / "x.npz")], "directory")
    fails(capsys, ["energy", str(trajectory), "--accuracy", "2"], "accuracy")
    fails(capsys, ["energy", str(trajectory), "--method", "fmm"], "invalid choice")
    fails(capsys, ["energy", str(trajectory), "--units", "furlong"], "invalid choice")
    fails(capsys, ["energy"], "required")
    fails(capsys, ["--threads", "0", "energy", str(trajectory)], "--threads")
    fails(
        capsys, ["energy", str(trajectory), "--charges", "Na=1", "--qeq", "p.json"], "not allowed"
    )


def test_without_ase_is_one_line(
    trajectory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ase.io", None)
    fails(capsys, ["energy", str(trajectory)], "needs ASE", "pip install ase")


# --- qeq -----------------------------------------------------------------------------------

CHI = {"Na": -1.0, "Cl": 1.5}
HARDNESS = {"Na": 6.0, "Cl": 5.0}
SIGMA = {"Na": 0.8, "Cl": 1.0}


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps({"electronegativity": CHI, "hardness": HARDNESS, "sigma": SIGMA}))
    return path


def dimer_qeq(d: float) -> tuple[float, float]:
    """Closed-form QEq of an open Na–Cl pair at distance d (eV, Å): charge of Na and energy.

    E(q) = Δχ q + ½ q² (A_11 + A_22 − 2 A_12), A_ii = J_i + k/(σ_i √π),
    A_12 = k erf(d / (√2 γ)) / d, γ = √(σ_1² + σ_2²)."""
    k = ff.units.EV_ANGSTROM
    gamma = math.hypot(SIGMA["Na"], SIGMA["Cl"])
    a11 = HARDNESS["Na"] + k / (SIGMA["Na"] * math.sqrt(math.pi))
    a22 = HARDNESS["Cl"] + k / (SIGMA["Cl"] * math.sqrt(math.pi))
    a12 = k * math.erf(d / (math.sqrt(2) * gamma)) / d
    curvature = a11 + a22 - 2 * a12
    q = -(CHI["Na"] - CHI["Cl"]) / curvature
    return q, (CHI["Na"] - CHI["Cl"]) * q + 0.5 * curvature * q * q


@pytest.fixture
def dimer(tmp_path: Path) -> Path:
    path = tmp_path / "dimer.xyz"
    write(path, ase.Atoms("NaCl", positions=[[0, 0, 0], [2.5, 0, 0]]), format="xyz")
    return path


def test_qeq_dimer_closed_form(
    dimer: Path, params: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q, energy = dimer_qeq(2.5)
    assert main(["qeq", str(dimer), "--params", str(params), "--quiet"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0][:4] == ["file", "frame", "energy_eV", "max_force_eV_per_A"]
    assert float(rows[1][2]) == pytest.approx(energy, rel=1e-9)
    out = tmp_path / "q.extxyz"
    assert main(["qeq", str(dimer), "--params", str(params), "-o", str(out), "--quiet"]) == 0
    atoms = read(out)
    np.testing.assert_allclose(atoms.get_charges(), [q, -q], atol=1e-8)  # 8 decimals
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-9)
    # Hellmann–Feynman: the force on Cl is −dE*/dd of the closed-form minimum
    h = 1e-5
    derivative = (dimer_qeq(2.5 + h)[1] - dimer_qeq(2.5 - h)[1]) / (2 * h)
    forces = atoms.get_forces()
    assert forces[1, 0] == pytest.approx(-derivative, rel=1e-6)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-7)
    # energy --qeq: the point-charge Coulomb energy of the equilibrated charges
    assert main(["energy", str(dimer), "--qeq", str(params), "--quiet"]) == 0
    rows = table(capsys.readouterr().out)
    assert float(rows[1][2]) == pytest.approx(-q * q * ff.units.EV_ANGSTROM / 2.5, rel=1e-9)


def test_qeq_yaml_periodic_and_total_charge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "params.yaml"
    path.write_text(
        "electronegativity: {Na: -1.0, Cl: 1.5}\nhardness: {Na: 6.0, Cl: 5.0}\n"
        "sigma: {Na: 0.8, Cl: 1.0}\nsolver: cg\ntolerance: 1.0e-10\n"
    )
    cell = tmp_path / "nacl.cif"
    write(cell, nacl() * (2, 1, 1), format="cif")
    out = tmp_path / "q.npz"
    argv = ["qeq", str(cell), "--params", str(path), "-o", str(out), "--quiet"]
    assert main([*argv, "--total-charge", "-1"]) == 0
    data = np.load(out)
    charges = data["charges"]
    assert charges.sum() == pytest.approx(-1.0, abs=1e-9)
    # the cell's two Na (and two Cl) are equivalent by translation
    na = data["numbers"] == 11
    assert np.ptp(charges[na]) < 1e-7 and np.ptp(charges[~na]) < 1e-7
    assert data["methods"][0] == "qeq-cg" and np.isfinite(data["stress"]).all()


def test_qeq_parameter_file_errors(
    dimer: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def params_with(**changes: object) -> str:
        data = {"electronegativity": CHI, "hardness": HARDNESS, "sigma": SIGMA, **changes}
        path = tmp_path / "p.json"
        path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
        return str(path)

    qeq = ["qeq", str(dimer), "--params"]
    fails(capsys, [*qeq, str(tmp_path / "missing.json")], "no such file")
    bad = tmp_path / "bad.json"
    bad.write_text("{electronegativity: 1")
    fails(capsys, [*qeq, str(bad)], "invalid JSON")
    fails(capsys, [*qeq, params_with(hardness={"Na": 6.0, "Xx": 5.0})], "unknown element 'Xx'")
    fails(capsys, [*qeq, params_with(hardness={"Na": 6.0})], "no hardness for Cl")
    fails(capsys, [*qeq, params_with(sigma=None)], "no 'sigma'")
    fails(capsys, [*qeq, params_with(hardness={"Na": 6.0, "Cl": "soft"})], "must be a number")
    fails(capsys, [*qeq, params_with(colour="blue")], "unknown key 'colour'")
    fails(capsys, [*qeq, params_with(units="furlong")], "units")
    fails(capsys, [*qeq, params_with(solver="magic")], "solver")
    fails(capsys, [*qeq, params_with(hardness={"Na": -6.0, "Cl": 5.0})], "hardness")
    fails(capsys, [*qeq, params_with(), "--total-charge", "nan"], "total_charge")
    fails(capsys, ["qeq", str(dimer)], "--params")


# --- featurize -----------------------------------------------------------------------------


@pytest.fixture
def molecules(tmp_path: Path) -> tuple[Path, Path]:
    """Two files: two periodic H/C/O frames, and one open one."""
    rng = np.random.default_rng(5)
    frames = []
    for periodic in (True, True, False):
        n = 9
        cell = np.diag([5.0, 5.5, 6.0]) + rng.uniform(-0.8, 0.8, (3, 3))
        numbers = rng.choice([1, 6, 8], n)
        numbers[:3] = [1, 6, 8]
        atoms = ase.Atoms(numbers=numbers, positions=rng.uniform(0, 1, (n, 3)) @ cell)
        if periodic:
            atoms.cell, atoms.pbc = cell, True
        frames.append(atoms)
    first, second = tmp_path / "a.extxyz", tmp_path / "b.extxyz"
    write(first, frames[:2], format="extxyz")
    write(second, frames[2:], format="extxyz")
    return first, second


def test_featurize_power_spectrum_matches_featomic(
    molecules: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    featomic = pytest.importorskip("featomic")
    config = tmp_path / "soap.json"
    hypers = {"cutoff": 3.0, "max_radial": 3, "max_angular": 2, "smearing": 0.4}
    config.write_text(json.dumps({"power-spectrum": {**hypers, "radial_accuracy": None}}))
    out = tmp_path / "ps.npz"
    argv = ["featurize", *map(str, molecules), "--config", str(config), "-o", str(out)]
    assert main([*argv, "--batch", "2", "--cutoff-width", "0.5"]) == 0
    assert "wrote power-spectrum 27x" in capsys.readouterr().err
    data = np.load(out)
    assert json.loads(str(data["hyperparameters"]))["cutoff_width"] == 0.5
    assert list(data["sample_names"]) == ["system", "atom", "center_type"]
    names = list(data["property_names"])
    assert names == ["neighbor_1_type", "neighbor_2_type", "l", "n_1", "n_2"]
    frames = [*read(molecules[0], ":"), *read(molecules[1], ":")]
    ref = featomic.SoapPowerSpectrum(
        cutoff={"radius": 3.0, "smoothing": {"type": "ShiftedCosine", "width": 0.5}},
        density={"type": "Gaussian", "width": 0.4},
        basis={
            "type": "TensorProduct",
            "max_angular": 2,
            "radial": {"type": "Gto", "max_radial": 3},
            "spline_accuracy": None,
        },
    ).compute(frames)
    rows = {(int(s), int(a)): k for k, (s, a, _) in enumerate(data["samples"])}
    props = {tuple(int(v) for v in p): k for k, p in enumerate(data["properties"])}
    seen = set()
    for key, block in ref.items():
        _, n1, n2 = (int(v) for v in key.values)
        cols = [props[(n1, n2, *(int(v) for v in p))] for p in block.properties.values]
        for i, (s, a) in enumerate(block.samples.values):
            mine = data["values"][rows[(s, a)], cols]
            np.testing.assert_allclose(mine, block.values[i], atol=1e-10, rtol=0)
            seen.add((int(s), int(a)))
    assert len(seen) == len(rows) == 27


def test_featurize_several_kinds_metatensor_and_invariances(
    molecules: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = molecules
    out = tmp_path / "f.npz"
    base = ["featurize", str(first), "--max-radial", "2", "--max-angular", "2", "--quiet"]
    assert main([*base, "--lode", "--triplets", "--soap", "--cutoff", "2.5", "-o", str(out)]) == 0
    data = np.load(out)
    assert list(data["kinds"]) == ["soap", "lode", "triplets"]
    assert list(data["triplets/sample_names"])[-2:] == ["neighbor_1", "neighbor_2"]
    for kind in data["kinds"]:
        values, samples = data[f"{kind}/values"], data[f"{kind}/samples"]
        assert values.shape == (len(samples), len(data[f"{kind}/properties"]))
    # a rigid rotation and translation of a periodic frame (cell included) changes no invariant
    atoms = read(first, 0)
    moved = atoms.copy()
    moved.rotate(37, (1, 2, 3), rotate_cell=True)
    moved.translate([0.3, -1.0, 2.0])
    pair = tmp_path / "pair.extxyz"
    write(pair, [atoms, moved], format="extxyz")
    ps = tmp_path / "ps.npz"
    assert main(["featurize", str(pair), "--power-spectrum", "-o", str(ps), "--quiet"]) == 0
    values = np.load(ps)["values"]
    # extxyz keeps 8 decimals of the positions; the radial spline is accurate to 1e-8
    np.testing.assert_allclose(values[: len(atoms)], values[len(atoms) :], atol=1e-7)
    mts = tmp_path / "lode.mts"
    metatensor = pytest.importorskip("metatensor")
    assert main([*base, "--lode", "-o", str(mts)]) == 0
    tensor = metatensor.load(str(mts))
    assert tensor.keys.names == ["o3_lambda", "o3_sigma", "center_type", "neighbor_type"]
    # λ = 0 block of the LODE expansion = the (l = 0) columns of the npz values
    assert main([*base, "--lode", "-o", str(out)]) == 0
    flat = np.load(out)
    block = tensor.block(o3_lambda=0, center_type=8, neighbor_type=1)
    index = {(int(s), int(a)): k for k, (s, a, _) in enumerate(flat["samples"])}
    rows = [index[(int(s), int(a))] for s, a in block.samples.values]
    cols = np.nonzero((flat["properties"][:, 0] == 1) & (flat["properties"][:, 1] == 0))[0]
    np.testing.assert_array_equal(flat["values"][np.ix_(rows, cols)], block.values[:, 0])


def test_featurize_errors(
    molecules: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, _ = molecules
    out = str(tmp_path / "f.npz")
    f = ["featurize", str(first)]
    fails(capsys, [*f, "-o", out], "choose the features")
    fails(capsys, [*f, "--soap"], "-o")
    fails(capsys, [*f, "--soap", "-o", str(tmp_path / "f.csv")], "output format")
    fails(capsys, [*f, "--soap", "--radius", "3", "-o", out], "--radius is not used by --soap")
    fails(capsys, [*f, "--soap", "--cutoff", "-1", "-o", out], "cutoff")
    fails(capsys, [*f, "--soap", "--max-radial", "99", "-o", out], "max_radial")
    fails(capsys, [*f, "--soap", "--species", "H,Xx", "-o", out], "unknown element 'Xx'")
    fails(capsys, [*f, "--soap", "--species", "H,O", "-o", out], "species")
    fails(capsys, [*f, "--soap", "--lode", "-o", str(tmp_path / "x.mts")], "one kind")
    fails(capsys, [*f, "--triplets", "-o", str(tmp_path / "x.mts")], "npz")
    fails(capsys, [*f, "--soap", "--batch", "0", "-o", out], "--batch")
    config = tmp_path / "c.json"
    config.write_text('{"cutof": 3}')
    fails(capsys, [*f, "--soap", "--config", str(config), "-o", out], "'cutof'", "unknown")
    config.write_text('{"soap": {"radius": 3}}')
    fails(capsys, [*f, "--config", str(config), "-o", out], "'radius'", "soap")
    config.write_text("[1, 2]")
    fails(capsys, [*f, "--soap", "--config", str(config), "-o", out], "mapping")
    yaml_config = tmp_path / "c.yaml"
    yaml_config.write_text("soap: {cutoff: [1\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        fails(capsys, [*f, "--config", str(yaml_config), "-o", out], "needs PyYAML")
    else:
        fails(capsys, [*f, "--config", str(yaml_config), "-o", out], "invalid YAML")


# --- demo and info -------------------------------------------------------------------------


def test_demo_dispatches_to_the_demos_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    def fake_run(name: str, **kwargs: object) -> int:
        calls.append((name, kwargs))
        return 0

    demos = types.ModuleType("farfield._demos")
    demos.NAMES = ("point-charges", "dispersion", "degenerate", "qeq")  # type: ignore[attr-defined]
    demos.run = fake_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "farfield._demos", demos)
    assert main(["demo", "point-charges"]) == 0
    assert calls[-1] == ("point-charges", {"quick": False, "output": None, "progress": True})
    out = tmp_path / "results" / "qeq"
    assert main(["demo", "qeq", "--quick", "-o", str(out), "--quiet"]) == 0
    assert calls[-1] == ("qeq", {"quick": True, "output": out, "progress": False})
    assert out.is_dir()
    fails(capsys, ["demo", "madelung"], "unknown demonstration 'madelung'", "point-charges")
    a_file = tmp_path / "file"
    a_file.write_text("")
    fails(capsys, ["demo", "qeq", "-o", str(a_file)], "not a directory")
    demos.run = lambda name, **kwargs: 3  # type: ignore[attr-defined]
    assert main(["demo", "dispersion"]) == 3


def test_demo_runs_the_real_demonstration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("farfield._demos")
    pytest.importorskip("matplotlib")
    assert main(["demo", "qeq", "--quick", "-o", str(tmp_path), "--quiet"]) == 0
    assert "[ok]" in capsys.readouterr().out
    assert (tmp_path / "results.json").exists()


def test_demo_without_the_demos_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "farfield._demos", None)
    fails(capsys, ["demo", "point-charges"], "not part of this installation")


def test_info_reports_version_threads_and_simd(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--threads", "1", "info"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines()[1:])
    assert lines["threads"].startswith("1")
    ff.set_num_threads(0)
    level = lines["simd"]
    assert level in ("avx512", "avx2", "baseline")
    cpuinfo = Path("/proc/cpuinfo")
    if (
        cpuinfo.exists()
        and "x86_64" in subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout
    ):
        flags = set(cpuinfo.read_text().split())
        expected = (
            "avx512"
            if {"avx512f", "avx2", "fma"} <= flags
            else "avx2"
            if {"avx2", "fma"} <= flags
            else "baseline"
        )
        assert level == expected


def test_subprocess_info_help_and_exit_codes() -> None:
    p = run("info")
    assert p.returncode == 0 and p.stdout.startswith(f"farfield {ff.__version__}\n")
    p = run("--help")
    assert p.returncode == 0
    for command in ("energy", "featurize", "qeq", "demo", "info"):
        assert command in p.stdout
    p = run("energy", "--units", "furlong", "x.xyz")
    assert p.returncode == 2
    one_line_error(p.stderr, "furlong")


def test_cli_module_exports() -> None:
    assert set(cli.UNITS) == {"eV", "kcal/mol", "kJ/mol", "hartree", "gaussian"}
    assert cli.DEMO_NAMES == ("point-charges", "dispersion", "degenerate", "qeq")
