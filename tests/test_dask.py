"""farfield.dask: the same numbers on a 2-worker LocalCluster, in this process and from a direct
call of the calculator on the whole dataset; input order and labels kept; calculators survive a
pickle round trip (how they reach a worker); physical anchors (the Madelung energy of rock salt,
QEq's charge constraint) so that the shards are not only compared with each other."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import farfield as ff
from farfield import dask as ffd

distributed = pytest.importorskip("distributed")
dask_bag = pytest.importorskip("dask.bag")

SPECIES = [1, 6, 8]
# NaCl Madelung constant (rock salt, nearest-neighbour distance), closed-form-converged value
MADELUNG_NACL = 1.747564594633182


def _frames() -> list[Atoms]:
    """Periodic cells and molecules of different sizes (so the order shows in ``n_atoms``)."""
    rng = np.random.default_rng(7)
    frames = []
    for n in (4, 6, 7, 9, 10):
        length = 1.9 * n ** (1 / 3) + 1.5
        positions: list[np.ndarray] = []
        while len(positions) < n:
            trial = rng.uniform(0, length, 3)
            if all(np.linalg.norm(trial - p) > 1.0 for p in positions):
                positions.append(trial)
        cell = np.diag([length, length + 0.3, length - 0.2]) + 0.3 * np.eye(3)[::-1]
        numbers = rng.choice(SPECIES, size=n)
        frames.append(Atoms(numbers=numbers, positions=positions, cell=cell, pbc=True))
    for i, name in enumerate(["H2O", "CH4", "CO2"]):
        atoms = molecule(name)
        atoms.rattle(0.02, seed=i)
        frames.insert(2 * i + 1, atoms)
    return frames


def _periodic(frames: list[Atoms]) -> list[Atoms]:
    return [f for f in frames if f.pbc.all()]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    threads = ff.get_num_threads()
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()
    # the workers share this process here, so their thread setting applied to it
    ff.set_num_threads(threads)


def _calculators() -> dict[str, Any]:
    lode = ff.LodeSphericalExpansion(
        exponent=1, smearing=1.0, max_angular=2, max_radial=2, radius=3.0, species=SPECIES
    )
    density = ff.SphericalExpansion(
        cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3, species=SPECIES
    )
    return {
        "power_spectrum": ff.PowerSpectrum(
            cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3, species=SPECIES
        ),
        "expansion": density,
        "lode": lode,
        "lode_power_spectrum": ff.LodePowerSpectrum(lode, density),
        "triplets": ff.TripletFeatures(cutoff=2.0, max_radial=1, max_angular=1, species=SPECIES),
        "bispectrum": ff.Bispectrum(cutoff=2.0, max_radial=1, max_angular=1, species=SPECIES),
    }


def _direct(calculator: Any, frames: list[Atoms], gradients: tuple[str, ...] = ()) -> Any:
    if isinstance(calculator, ff.LodeSphericalExpansion):
        return calculator.compute(frames, gradients).to_descriptor()
    if isinstance(calculator, (ff.TripletFeatures, ff.Bispectrum)):
        return calculator.compute(frames)
    return calculator.compute(frames, gradients)


def _same_features(arrays: dict[str, Any], direct: Any) -> None:
    got = ffd.to_descriptor(arrays)
    np.testing.assert_array_equal(got.values, direct.values)
    np.testing.assert_array_equal(got.samples, direct.samples)
    np.testing.assert_array_equal(got.properties, direct.properties)
    assert got.property_names == direct.property_names
    assert got.sample_names == direct.sample_names
    assert set(got.gradients) == set(direct.gradients)
    for name, gradient in direct.gradients.items():
        np.testing.assert_array_equal(got.gradients[name], gradient)
    if direct.positions_samples is not None:
        np.testing.assert_array_equal(got.positions_samples, direct.positions_samples)


@pytest.mark.parametrize("name", list(_calculators()))
def test_features_cluster_equal_in_process_equal_direct(client: Any, name: str) -> None:
    calculator = _calculators()[name]
    frames = _frames()
    if name.startswith("lode"):
        frames = _periodic(frames)  # the open LODE path takes ~0.3 s a molecule
    gradients = ("positions", "strain") if name in ("power_spectrum", "lode") else ()
    direct = _direct(calculator, frames, gradients)
    here = ffd.compute(calculator, frames, shard_size=3, gradients=gradients)
    there = ffd.compute(calculator, frames, shard_size=3, gradients=gradients, client=client)
    assert len(here) == len(there) == (len(frames) + 2) // 3
    for arrays in (ffd.load(here), ffd.load(there)):
        _same_features(arrays, direct)
        np.testing.assert_array_equal(arrays["n_atoms"], [len(f) for f in frames])
        np.testing.assert_array_equal(arrays["shard"], np.arange(len(frames)) // 3)


def test_files_and_database_in_input_order(client: Any, tmp_path: Path) -> None:
    import ase.db
    import ase.io

    frames = _frames()
    # two extxyz shards given in an order that is not the sorted one, and a database
    ase.io.write(tmp_path / "b.extxyz", frames[:5])
    ase.io.write(tmp_path / "a.extxyz", frames[5:])
    with ase.db.connect(tmp_path / "frames.db") as db:
        for atoms in frames:
            db.write(atoms)
    calculator = _calculators()["power_spectrum"]
    paths = [tmp_path / "b.extxyz", tmp_path / "a.extxyz"]
    # extended XYZ keeps 8 decimals: the reference reads the files back
    read_back = [atoms for path in paths for atoms in ase.io.read(path, index=":")]
    for dataset, structures in ((paths, read_back), (str(tmp_path / "frames.db"), frames)):
        direct = calculator.compute(structures)
        here = ffd.compute(calculator, dataset, shard_size=3)
        out = tmp_path / f"out-{len(here)}"
        written = ffd.compute(calculator, dataset, shard_size=3, client=client, output=out)
        assert written == [str(out / f"shard-{i:05d}.npz") for i in range(len(written))]
        shard = ffd.read(written[0])
        assert {"values", "samples", "properties", "property_names", "sample_names"} <= set(shard)
        assert str(shard["kind"]) == "features" and int(shard["shard"]) == 0
        for arrays in (ffd.load(here), ffd.load(written), ffd.load(out)):
            _same_features(arrays, direct)
    # a glob is sorted: a.extxyz first
    globbed = ffd.load(ffd.compute(calculator, str(tmp_path / "*.extxyz")))
    np.testing.assert_array_equal(globbed["n_atoms"], [len(f) for f in frames[5:] + frames[:5]])
    _same_features(globbed, calculator.compute(read_back[5:] + read_back[:5]))


def test_dask_bag_partitions_are_shards(client: Any) -> None:
    frames = _frames()
    bag = dask_bag.from_sequence(frames, npartitions=3)
    calculator = _calculators()["expansion"]
    direct = calculator.compute(frames)
    here = ffd.compute(calculator, bag)
    there = ffd.compute(calculator, bag, client=client)
    assert len(here) == len(there) == bag.npartitions
    for arrays in (ffd.load(here), ffd.load(there)):
        _same_features(arrays, direct)


def test_coulomb_energies_forces_and_madelung(client: Any) -> None:
    frames = []
    for i, a in enumerate((5.64, 5.5, 5.7, 5.8, 5.64)):
        atoms = bulk("NaCl", "rocksalt", a=a, cubic=True)
        if i == 4:
            atoms.rattle(0.05, seed=1)
        atoms.set_initial_charges([1.0, -1.0] * 4)
        frames.append(atoms)
    open_cluster = molecule("H2O")
    frames.append(open_cluster)
    charges = {"Na": 1.0, "Cl": -1.0, "O": -0.8, "H": 0.4}
    calculator = ff.Coulomb(accuracy=1e-8)
    direct = [ff.Coulomb(accuracy=1e-8).compute(f, charges) for f in frames]
    here = ffd.load(ffd.compute(calculator, frames, shard_size=2, charges=charges))
    there = ffd.load(ffd.compute(calculator, frames, shard_size=2, charges=charges, client=client))
    assert calculator.tunings == 0  # each shard tuned its own copy
    for arrays in (here, there):
        np.testing.assert_array_equal(arrays["energy"], [r.energy for r in direct])
        np.testing.assert_array_equal(arrays["forces"], np.concatenate([r.forces for r in direct]))
        np.testing.assert_array_equal(arrays["stress"][:5], [r.stress for r in direct[:5]])
        assert np.isnan(arrays["stress"][5]).all()  # open structure
        np.testing.assert_array_equal(
            arrays["atom_samples"][:, 0], np.repeat(np.arange(6), [8] * 5 + [3])
        )
    # rock salt: E per ion pair = -M / d (Gaussian units), d = a / 2
    for energy, a in zip(here["energy"][:4], (5.64, 5.5, 5.7, 5.8), strict=True):
        assert energy / 4 == pytest.approx(-MADELUNG_NACL / (a / 2), rel=1e-7)


def test_qeq_charges_cluster_equal_direct(client: Any) -> None:
    frames = []
    for i in range(5):
        atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True) if i % 2 else molecule("NaCl")
        atoms.rattle(0.1, seed=i)
        atoms.info["charge"] = float(i % 3 - 1)
        frames.append(atoms)
    calculator = ff.QEq(
        electronegativity={"Na": -1.0, "Cl": 1.5},
        hardness={"Na": 6.0, "Cl": 5.0},
        sigma={"Na": 0.8, "Cl": 1.0},
        prefactor=ff.units.EV_ANGSTROM,
    )
    totals = [f.info["charge"] for f in frames]
    direct = calculator.batch(frames, total_charge=totals)
    here = ffd.load(ffd.compute(calculator, frames, shard_size=2, total_charge="charge"))
    there = ffd.load(
        ffd.compute(calculator, frames, shard_size=2, total_charge="charge", client=client)
    )
    for arrays in (here, there):
        np.testing.assert_array_equal(
            arrays["charges"], np.concatenate([r.charges for r in direct])
        )
        np.testing.assert_array_equal(arrays["energy"], [r.energy for r in direct])
        np.testing.assert_array_equal(arrays["forces"], np.concatenate([r.forces for r in direct]))
        # the constraint, independently of the solver: each structure's charges sum to info
        sums = np.add.reduceat(arrays["charges"], np.cumsum([0, *arrays["n_atoms"][:-1]]))
        np.testing.assert_allclose(sums, totals, atol=1e-9)


@pytest.mark.parametrize("name", list(_calculators()))
def test_calculators_pickle_by_settings(name: str) -> None:
    calculator = _calculators()[name]
    frames = _periodic(_frames())[:3]
    copy = pickle.loads(pickle.dumps(calculator))
    assert type(copy) is type(calculator) and copy is not calculator
    np.testing.assert_array_equal(_direct(copy, frames).values, _direct(calculator, frames).values)


def test_zarr_shards(tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    calculator = _calculators()["power_spectrum"]
    frames = _frames()
    written = ffd.compute(calculator, frames, shard_size=4, output=tmp_path, format="zarr")
    assert written == [str(tmp_path / f"shard-{i:05d}.zarr") for i in range(2)]
    _same_features(ffd.load(written), calculator.compute(frames))


def test_refusals(tmp_path: Path) -> None:
    frames = _frames()
    without_species = ff.PowerSpectrum(cutoff=3.0, max_radial=2, max_angular=2, smearing=0.3)
    with pytest.raises(ValueError, match="species"):
        ffd.compute(without_species, frames)
    with pytest.raises(ValueError, match="gradients"):
        ffd.compute(_calculators()["triplets"], frames, gradients=["positions"])
    with pytest.raises(ValueError, match="format"):
        ffd.compute(_calculators()["expansion"], frames, format="hdf5")
    with pytest.raises(ValueError, match="no file matches"):
        ffd.compute(_calculators()["expansion"], str(tmp_path / "*.extxyz"))
    with pytest.raises(TypeError, match="calculator"):
        ffd.compute(object(), frames)
    with pytest.raises(ValueError, match="charges"):
        ffd.compute(_calculators()["expansion"], frames, charges={"H": 1.0})


@pytest.mark.slow
def test_worker_processes(tmp_path: Path) -> None:
    """Real worker processes: calculators and shards travel by pickle, workers read the files
    and write the results; farfield's pool on each worker is sized to its Dask threads."""
    import ase.io

    frames = _periodic(_frames())
    ase.io.write(tmp_path / "a.extxyz", frames[:2])
    ase.io.write(tmp_path / "b.extxyz", frames[2:])
    calculators = _calculators()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        paths = [tmp_path / "a.extxyz", tmp_path / "b.extxyz"]
        read_back = [atoms for path in paths for atoms in ase.io.read(path, index=":")]
        for name in ("power_spectrum", "lode", "triplets"):
            calculator = calculators[name]
            written = ffd.compute(calculator, paths, client=c, output=tmp_path / name)
            _same_features(ffd.load(written), _direct(calculator, read_back))
        threads = c.run(ff.get_num_threads)
        assert set(threads.values()) == {1}
