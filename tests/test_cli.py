"""The command line: one-line errors (no traceback unless --debug), charges from the file or
--charges, frames without charges reported as an error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import farfield as ff
from farfield.cli import main

ase = pytest.importorskip("ase")
from ase.build import bulk  # noqa: E402
from ase.io import write  # noqa: E402


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "farfield.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def nacl() -> ase.Atoms:
    return bulk("NaCl", "rocksalt", a=5.64)


def reference_energy() -> float:
    return ff.ewald(nacl(), [1.0, -1.0], accuracy=1e-6, prefactor=ff.units.EV_ANGSTROM).energy


def energies(stdout: str) -> list[float]:
    lines = stdout.strip().splitlines()
    assert lines[0] == "frame,energy_eV,max_force_eV_per_A"
    return [float(line.split(",")[1]) for line in lines[1:]]


def test_missing_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    p = run("ewald", str(tmp_path / "nope.xyz"), "--quiet")
    assert p.returncode != 0
    assert p.stderr.startswith("farfield: error:") and "no such file" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    debug = run("--debug", "ewald", str(tmp_path / "nope.xyz"), "--quiet")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_malformed_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\ncomment\nNa 0 0\nthis is not xyz\n")
    p = run("ewald", str(bad), "--quiet")
    assert p.returncode != 0
    assert p.stderr.startswith("farfield: error:") and "bad.xyz" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("name", "fmt"), [("nacl.cif", "cif"), ("nacl.xyz", "xyz")])
def test_frames_without_charges_are_an_error(tmp_path: Path, name: str, fmt: str) -> None:
    path = tmp_path / name
    write(path, nacl(), format=fmt)
    p = run("ewald", str(path), "--quiet")
    assert p.returncode != 0
    assert "no charges" in p.stderr and "--charges" in p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_charges_option_per_element(tmp_path: Path) -> None:
    path = tmp_path / "nacl.cif"
    write(path, nacl(), format="cif")
    ref = reference_energy()
    for spec in ["Na=1,Cl=-1", '{"Na": 1, "Cl": -1}', " Cl = -1 , Na = 1 "]:
        p = run("ewald", str(path), "--quiet", "--charges", spec)
        assert p.returncode == 0, p.stderr
        (energy,) = energies(p.stdout)
        assert energy == pytest.approx(ref, rel=1e-9)
        assert energy < 0


def test_charges_option_errors(tmp_path: Path) -> None:
    path = tmp_path / "nacl.cif"
    write(path, nacl(), format="cif")
    for spec, message in [
        ("Na=1", "no charge for Cl"),
        ("Na=1,Cl=minus", "must be a number"),
        ("Na:1,Cl:-1", "element=charge"),
        ("Xx=1,Cl=-1", "unknown element"),
        ("{not json", "invalid JSON"),
        ("Na=nan,Cl=-1", "finite"),
    ]:
        p = run("ewald", str(path), "--quiet", "--charges", spec)
        assert p.returncode != 0, spec
        assert p.stderr.startswith("farfield: error:") and message in p.stderr, p.stderr
        assert "Traceback" not in p.stderr


def test_charges_from_an_extended_xyz_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    atoms = nacl()
    atoms.set_initial_charges([1.0, -1.0])
    path = tmp_path / "nacl.extxyz"
    write(path, [atoms, atoms], format="extxyz")
    assert main(["ewald", str(path), "--quiet"]) == 0
    out = energies(capsys.readouterr().out)
    np.testing.assert_allclose(out, [reference_energy()] * 2, rtol=1e-9)


def test_main_returns_non_zero_for_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ewald", str(tmp_path / "missing.cif"), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith("farfield: error:")
