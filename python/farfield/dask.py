"""Datasets beyond one process: features, energies and QEq charges of many structures on a
Dask cluster (``pip install farfield[dask]``), or in this process with the same numbers.

A dataset is cut into *shards*: each extended-XYZ (or other ASE-readable) file is one shard,
an ASE database is cut into ``shard_size`` rows, a list of structures into ``shard_size``
structures and a :class:`dask.bag.Bag` gives one shard per partition. :func:`compute` runs one
calculator on every shard and returns, or writes (``output=``), one set of labelled arrays per
shard, in the order of the input::

    import farfield as ff
    from farfield import dask as ffd
    from dask.distributed import Client

    calc = ff.PowerSpectrum(cutoff=5.0, max_radial=5, max_angular=4, smearing=0.3,
                            species=[1, 8])
    paths = ffd.compute(calc, "data/*.extxyz", output="features/", client=Client())
    features = ffd.to_descriptor(ffd.load(paths))   # one ff.Descriptor, input order

Calculators: :class:`~farfield.SphericalExpansion`, :class:`~farfield.PowerSpectrum`,
:class:`~farfield.LodeSphericalExpansion`, :class:`~farfield.LodePowerSpectrum`,
:class:`~farfield.TripletFeatures`, :class:`~farfield.Bispectrum` (features: ``values``,
``samples``, ``properties`` and the requested ``gradients``), :class:`~farfield.Coulomb`
(``energy``, ``forces``, ``stress``, ``virial``) and :class:`~farfield.QEq` (the same and
``charges``, ``chemical_potential``). Feature calculators must name their ``species``, so that
every shard has the same columns.

Distribution is Dask's: the calculator travels to the workers by pickle (its settings; native
tables are rebuilt there), shards are tasks (``client.map``; ``retries=`` is Dask's), files are
read and results written by the workers (``output`` must be reachable from every worker), and
only the paths come back. Without a client the same function runs on each shard here, one
after the other: the numbers are identical. Each shard starts from its own copy of the
calculator (no Coulomb tuning or QEq warm start is carried from one shard to another), so a
result does not depend on which worker ran which shard.

Threads: every farfield call runs in farfield's thread pool, one per process
(:func:`farfield.set_num_threads`). On a worker that pool is sized to the worker's number of
Dask threads (``threads=`` overrides it), so the tasks a worker runs at once share as many
cores as Dask gives the worker: with ``nthreads=1`` and one worker per core, shards run one
per core; with one worker per machine and ``nthreads=cores``, several shards share the
cores. Without a client, ``threads`` applies during the call and the previous size is
restored after it.
"""

from __future__ import annotations

import copy
import glob
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _checks
from ._native import get_num_threads, set_num_threads
from .coulomb import Coulomb
from .descriptors import Descriptor, PowerSpectrum, SphericalExpansion, _concatenate_samples
from .lode import LodePowerSpectrum, LodeSphericalExpansion
from .qeq import QEq
from .triplets import Bispectrum, TripletFeatures

__all__ = ["Shard", "compute", "load", "read", "shards", "to_descriptor"]

Arrays = dict[str, npt.NDArray[Any]]

_FEATURES = (
    SphericalExpansion,
    PowerSpectrum,
    LodeSphericalExpansion,
    LodePowerSpectrum,
    TripletFeatures,
    Bispectrum,
)
_DATABASE_SUFFIXES = (".db", ".json")
_FORMATS = ("npz", "zarr")
_GRADIENTS = ("positions", "strain", "cell")
#: per-structure arrays (first axis: structures) and per-atom arrays (first axis: atoms)
_PER_STRUCTURE = ("energy", "stress", "virial", "chemical_potential", "iterations", "residual")
_PER_ATOM = ("forces", "charges", "potentials")


@dataclass(frozen=True)
class Shard:
    """One shard of a dataset given as files: ``path`` read by ASE (``ase.io.read`` of every
    frame) or, for an ASE database (``.db``, ``.json``), the rows ``offset`` to
    ``offset + limit`` of ``db.select(select, sort="id")``. Loaded where it is processed
    (on a worker, from a file system every worker sees)."""

    path: str
    database: bool = False
    select: str | None = None
    offset: int = 0
    limit: int | None = None

    def load(self) -> list[Any]:
        """The structures (``ase.Atoms``) of the shard, in file order."""
        if self.database:
            import ase.db

            with ase.db.connect(self.path) as db:  # type: ignore[no-untyped-call]
                rows = db.select(self.select, sort="id", offset=self.offset, limit=self.limit)
                return [row.toatoms() for row in rows]
        import ase.io

        frames = ase.io.read(self.path, index=":")
        return list(frames) if isinstance(frames, list) else [frames]


def _is_bag(dataset: Any) -> bool:
    return type(dataset).__module__.startswith("dask.bag") and hasattr(dataset, "to_delayed")


def shards(
    dataset: Any, shard_size: int = 1000, select: str | None = None
) -> list[Shard] | list[list[Any]]:
    """The shards of a dataset, in input order: a list of :class:`Shard` for files (a path, a
    glob pattern, or a list of them: one shard per file, a database cut into ``shard_size``
    rows of ``select``), or a list of lists of structures for a sequence of ``ase.Atoms`` /
    :class:`farfield.System` (``shard_size`` each). (A Dask bag is sharded by its partitions,
    in :func:`compute`.)"""
    shard_size = _checks.integer("shard_size", shard_size, minimum=1)
    if isinstance(dataset, (str, os.PathLike)):
        dataset = [dataset]
    if not isinstance(dataset, Sequence) or isinstance(dataset, (bytes, bytearray)):
        raise TypeError(
            "dataset must be a path, a glob pattern, a list of paths, a list of structures "
            f"or a dask bag, got {type(dataset).__name__}"
        )
    if all(isinstance(item, (str, os.PathLike)) for item in dataset) and len(dataset) > 0:
        out: list[Shard] = []
        for item in dataset:
            name = os.fspath(item)
            paths = sorted(glob.glob(name)) if glob.has_magic(name) else [name]
            if not paths:
                raise ValueError(f"dataset: no file matches {name!r}")
            for path in paths:
                if not os.path.exists(path):
                    raise ValueError(f"dataset: no such file {path!r}")
                out.extend(_file_shards(path, shard_size, select))
        return out
    if select is not None:
        raise ValueError("select applies to ASE databases only")
    items = list(dataset)
    return [items[i : i + shard_size] for i in range(0, len(items), shard_size)]


def _file_shards(path: str, shard_size: int, select: str | None) -> list[Shard]:
    if not path.endswith(_DATABASE_SUFFIXES):
        if select is not None:
            raise ValueError(f"select applies to ASE databases only, not to {path!r}")
        return [Shard(path)]
    import ase.db

    with ase.db.connect(path) as db:  # type: ignore[no-untyped-call]
        count = db.count(select)
    return [
        Shard(path, database=True, select=select, offset=start, limit=shard_size)
        for start in range(0, max(count, 1), shard_size)
    ]


@dataclass(frozen=True)
class _Options:
    gradients: tuple[str, ...]
    charges: Any
    total_charge: float | str | None
    output: str | None
    format: str
    threads: int | None


def _check_calculator(calculator: Any, options: _Options) -> None:
    if isinstance(calculator, _FEATURES):
        missing = []
        if isinstance(calculator, LodePowerSpectrum):
            parts = [("lode", calculator.lode), ("density", calculator.density)]
            missing = [name for name, c in parts if c is not None and c.species is None]
        elif calculator.species is None:
            missing = [type(calculator).__name__]
        if missing:
            raise ValueError(
                f"species: set species=[...] on {', '.join(missing)}: without it each shard "
                "would get the columns of the species it happens to contain"
            )
        if options.gradients and isinstance(calculator, (TripletFeatures, Bispectrum)):
            raise ValueError(f"gradients: {type(calculator).__name__} computes no gradients")
    elif isinstance(calculator, (Coulomb, QEq)):
        if options.gradients:
            raise ValueError("gradients apply to feature calculators only")
    else:
        raise TypeError(
            "calculator must be a farfield SphericalExpansion, PowerSpectrum, "
            "LodeSphericalExpansion, LodePowerSpectrum, TripletFeatures, Bispectrum, Coulomb "
            f"or QEq, got {type(calculator).__name__}"
        )
    if options.charges is not None and not isinstance(calculator, Coulomb):
        raise ValueError("charges apply to Coulomb only")
    if options.total_charge is not None and not isinstance(calculator, QEq):
        raise ValueError("total_charge applies to QEq only")


def compute(
    calculator: Any,
    dataset: Any,
    *,
    output: str | os.PathLike[str] | None = None,
    client: Any = None,
    gradients: Iterable[str] = (),
    charges: Any = None,
    total_charge: float | str | None = None,
    shard_size: int = 1000,
    select: str | None = None,
    format: str = "npz",
    threads: int | None = None,
    retries: int = 0,
) -> list[str] | list[Arrays]:
    """Runs ``calculator`` on every structure of ``dataset``, shard by shard.

    Args:
        calculator: a feature calculator (with ``species`` set), :class:`farfield.Coulomb` or
            :class:`farfield.QEq`.
        dataset: a path or glob pattern (extended XYZ or any file ``ase.io.read`` reads: one
            shard per file; ASE databases ``.db``/``.json``: ``shard_size`` rows per shard), a
            list of them, a list of ``ase.Atoms`` / :class:`farfield.System` (``shard_size``
            per shard), or a :class:`dask.bag.Bag` of structures (a shard per partition).
        output: a directory: each shard is written there as ``shard-NNNNN.npz`` (or
            ``.zarr``) by the worker that computed it, and the paths are returned; without it
            the arrays are returned.
        client: a :class:`distributed.Client`; ``None`` runs every shard in this process.
        gradients: feature gradients, as for the calculator's ``compute`` (not triplets).
        charges: Coulomb only: charges for every structure as a per-element map (e.g.
            ``{"Na": 1, "Cl": -1}``); by default each ``ase.Atoms``' initial charges.
        total_charge: QEq only: Σq of every structure (default: the calculator's), or the key
            of ``atoms.info`` that holds it (e.g. ``"charge"``).
        shard_size: structures per shard for lists and ASE databases.
        select: an ASE database query (``db.select(select)``).
        format: ``"npz"`` or ``"zarr"`` (needs the ``zarr`` package).
        threads: farfield's threads per worker (default: the worker's number of Dask
            threads) or, without a client, in this process during the call.
        retries: Dask retries of a failed shard.

    Returns:
        Per shard, in input order: the path written, or a dict of arrays (:func:`read`'s
        layout): ``kind``, ``shard``, ``source``, ``n_atoms`` (per structure) and, for
        features, ``values``, ``samples`` (``system`` is the structure's index in its shard),
        ``sample_names``, ``properties``, ``property_names``, ``gradient_<name>`` and
        ``positions_samples``; for Coulomb and QEq ``energy`` (per structure), ``forces``
        (per atom, structures one after the other), ``stress`` and ``virial`` (NaN for open
        structures), ``atom_samples`` (system, atom); QEq adds ``charges``,
        ``chemical_potential``, ``iterations``, ``residual``. :func:`load` joins them.
    """
    options = _Options(
        gradients=tuple(
            _checks.string_list("gradients", gradients, ("positions", "strain", "cell"))
        ),
        charges=charges,
        total_charge=total_charge,
        output=None if output is None else os.fspath(output),
        format=format,
        threads=None if threads is None else _checks.integer("threads", threads, minimum=1),
    )
    if format not in _FORMATS:
        raise ValueError(f"format must be 'npz' or 'zarr', got {format!r}")
    if format == "zarr":
        try:
            import zarr  # noqa: F401
        except ImportError as error:
            raise ImportError("format='zarr' needs the zarr package") from error
    if isinstance(total_charge, bool) or not isinstance(
        total_charge, (str, int, float, type(None))
    ):
        raise TypeError(f"total_charge must be a number or an atoms.info key, got {total_charge!r}")
    retries = _checks.integer("retries", retries)
    _check_calculator(calculator, options)
    if options.output is not None:
        os.makedirs(options.output, exist_ok=True)

    bag = _is_bag(dataset)
    if client is None:
        previous = get_num_threads()
        if options.threads is not None:
            set_num_threads(options.threads)
        try:
            if bag:
                # each partition computed here in turn (Dask's synchronous scheduler)
                pieces: Iterable[Any] = (
                    part.compute(scheduler="sync") for part in dataset.to_delayed()
                )
            else:
                pieces = shards(dataset, shard_size, select)
            return [  # type: ignore[return-value]
                _run_shard(piece, index, calculator, options) for index, piece in enumerate(pieces)
            ]
        finally:
            if options.threads is not None:
                set_num_threads(previous)
    inputs: list[Any]
    if bag:
        inputs = client.compute(list(dataset.to_delayed()))
    else:
        inputs = list(shards(dataset, shard_size, select))
        if inputs and not isinstance(inputs[0], Shard):
            inputs = client.scatter(inputs)
    calculator_future = client.scatter(calculator)
    futures = client.map(
        _run_shard,
        inputs,
        range(len(inputs)),
        calculator=calculator_future,
        options=options,
        retries=retries,
        pure=False,
    )
    return client.gather(futures)  # type: ignore[no-any-return]


def _worker_threads(options: _Options) -> None:
    """On a Dask worker: size farfield's pool to ``threads`` or the worker's Dask threads."""
    if "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # not on a worker
        return
    wanted = options.threads
    if wanted is None:
        state = getattr(worker, "state", worker)
        wanted = int(getattr(state, "nthreads", 1))
    if get_num_threads() != wanted:
        set_num_threads(wanted)


def _run_shard(source: Any, index: int, calculator: Any, options: _Options) -> str | Arrays:
    """One shard: load it, run a private copy of the calculator, return or write the arrays."""
    _worker_threads(options)
    if isinstance(source, Shard):
        structures = source.load()
        name = source.path if not source.database else f"{source.path}@{source.offset}"
    else:
        structures = list(source)
        name = f"shard {index}"
    if isinstance(calculator, (Coulomb, QEq)):
        calculator = copy.deepcopy(calculator)
    arrays = _evaluate(calculator, structures, options)
    arrays["kind"] = np.asarray(_kind(calculator))
    arrays["shard"] = np.asarray(index, dtype=np.int64)
    arrays["source"] = np.asarray(name)
    if options.output is None:
        return arrays
    return _write(arrays, options.output, index, options.format)


def _kind(calculator: Any) -> str:
    if isinstance(calculator, QEq):
        return "qeq"
    if isinstance(calculator, Coulomb):
        return "coulomb"
    return "features"


def _evaluate(calculator: Any, structures: list[Any], options: _Options) -> Arrays:
    n_atoms = np.array([len(s) for s in structures], dtype=np.int64)
    arrays: Arrays = {"n_atoms": n_atoms}
    atom_samples = np.array(
        [(i, a) for i, n in enumerate(n_atoms) for a in range(n)], dtype=np.int64
    ).reshape(-1, 2)
    if not structures:
        return arrays
    if isinstance(calculator, QEq):
        total: Any = None
        if isinstance(options.total_charge, str):
            key = options.total_charge
            try:
                total = [float(s.info[key]) for s in structures]
            except (AttributeError, KeyError) as error:
                raise ValueError(f"total_charge: a structure has no info[{key!r}]") from error
        elif options.total_charge is not None:
            total = float(options.total_charge)
        results = calculator.batch(structures, total_charge=total)
        arrays["charges"] = np.concatenate([r.charges for r in results])
        arrays["chemical_potential"] = np.array(
            [float(np.ravel(r.chemical_potential)[0]) for r in results]
        )
        arrays["iterations"] = np.array([r.iterations for r in results], dtype=np.int64)
        arrays["residual"] = np.array([r.residual for r in results], dtype=np.float64)
    elif isinstance(calculator, Coulomb):
        results = [calculator.compute(s, options.charges) for s in structures]
    else:
        arrays.update(_features(calculator, structures, options.gradients))
        return arrays
    nan = np.full((3, 3), np.nan)
    arrays["energy"] = np.array([r.energy for r in results], dtype=np.float64)
    arrays["forces"] = np.concatenate([r.forces for r in results]).reshape(-1, 3)
    arrays["stress"] = np.array([nan if r.stress is None else r.stress for r in results])
    arrays["virial"] = np.array([nan if r.virial is None else r.virial for r in results])
    arrays["atom_samples"] = atom_samples
    return arrays


def _features(calculator: Any, structures: list[Any], gradients: tuple[str, ...]) -> Arrays:
    descriptor: Descriptor
    if isinstance(calculator, LodeSphericalExpansion):
        descriptor = calculator.compute(structures, gradients).to_descriptor()
    elif isinstance(calculator, (SphericalExpansion, PowerSpectrum)):
        descriptor = calculator.compute(structures, gradients, progress=False)
    elif isinstance(calculator, LodePowerSpectrum):
        descriptor = calculator.compute(structures, gradients)
    else:
        descriptor = calculator.compute(structures)
    arrays: Arrays = {
        "values": descriptor.values,
        "samples": descriptor.samples,
        "sample_names": np.asarray(descriptor.sample_names),
        "properties": descriptor.properties,
        "property_names": np.asarray(descriptor.property_names),
    }
    for name, gradient in descriptor.gradients.items():
        arrays[f"gradient_{name}"] = gradient
    if descriptor.positions_samples is not None:
        arrays["positions_samples"] = descriptor.positions_samples
    return arrays


def _write(arrays: Arrays, directory: str, index: int, format: str) -> str:
    """Writes one shard under a temporary name, then renames it (a retried or repeated task
    replaces the file whole)."""
    path = os.path.join(directory, f"shard-{index:05d}.{format}")
    temporary = f"{path}.tmp-{os.getpid()}"
    if format == "npz":
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]
        os.replace(temporary, path)
        return path
    import shutil

    import zarr

    numeric = {k: np.asarray(v, order="C") for k, v in arrays.items() if v.dtype.kind != "U"}
    group = zarr.open_group(temporary, mode="w")
    for key, value in numeric.items():
        group.create_array(key, data=value)
    group.attrs.update({k: v.tolist() for k, v in arrays.items() if v.dtype.kind == "U"})
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(temporary, path)
    return path


def read(path: str | os.PathLike[str]) -> Arrays:
    """The arrays of one shard written by :func:`compute` (npz or zarr)."""
    name = os.fspath(path)
    if name.endswith(".zarr"):
        import zarr

        group = zarr.open_group(name, mode="r")
        out: Arrays = {key: np.asarray(array[...]) for key, array in group.arrays()}
        out.update({key: np.asarray(value) for key, value in group.attrs.items()})
        return out
    with np.load(name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def load(results: str | os.PathLike[str] | Sequence[Any]) -> Arrays:
    """The shards of :func:`compute` joined in input order: its return value (paths or
    arrays), or an output directory. Indices are made global: ``samples[:, system]``,
    ``atom_samples[:, 0]`` and ``positions_samples`` (sample, system) count over the whole
    dataset; per-structure and per-atom arrays are concatenated; ``shard`` gives each
    structure's shard."""
    if isinstance(results, (str, os.PathLike)):
        directory = os.fspath(results)
        results = sorted(str(p) for p in Path(directory).iterdir() if p.name.startswith("shard-"))
        if not results:
            raise ValueError(f"no shard-NNNNN files in {directory!r}")
    parts = [read(r) if isinstance(r, (str, os.PathLike)) else dict(r) for r in results]
    if not parts:
        raise ValueError("nothing to load: no shards")
    kinds = {str(p["kind"]) for p in parts}
    if len(kinds) != 1:
        raise ValueError(f"shards of different kinds: {sorted(kinds)}")
    parts.sort(key=lambda p: int(p["shard"]))
    out: Arrays = {
        "kind": parts[0]["kind"],
        "n_atoms": np.concatenate([p["n_atoms"] for p in parts]),
        "shard": np.concatenate(
            [np.full(len(p["n_atoms"]), int(p["shard"]), dtype=np.int64) for p in parts]
        ),
    }
    full = [p for p in parts if len(p["n_atoms"]) > 0]
    if not full:
        return out
    first = full[0]
    structure_offsets = np.cumsum([0] + [len(p["n_atoms"]) for p in full])
    if "values" in first:
        for key in ("property_names", "sample_names", "properties"):
            if any(not np.array_equal(p[key], first[key]) for p in full):
                raise ValueError(f"the shards' {key} differ")
            out[key] = first[key]
        system = list(first["sample_names"]).index("system")
        out["samples"], positions = _concatenate_samples(
            full, list(structure_offsets[: len(full)]), system_column=system
        )
        if positions is not None:
            out["positions_samples"] = positions
        keys = ["values"] + [k for k in first if k.startswith("gradient_")]
        for key in keys:
            out[key] = np.concatenate([p[key] for p in full])
        return out
    for key in _PER_STRUCTURE + _PER_ATOM:
        if key in first:
            out[key] = np.concatenate([p[key] for p in full])
    atoms = []
    for part, offset in zip(full, structure_offsets, strict=False):
        a = part["atom_samples"].copy()
        a[:, 0] += offset
        atoms.append(a)
    out["atom_samples"] = np.concatenate(atoms)
    return out


def to_descriptor(arrays: Mapping[str, npt.NDArray[Any]]) -> Descriptor:
    """A :class:`farfield.Descriptor` of the features of :func:`load` (or of one shard)."""
    if "values" not in arrays:
        raise ValueError("to_descriptor needs feature arrays (a 'values' entry)")
    gradients = {
        key[len("gradient_") :]: np.asarray(value)
        for key, value in arrays.items()
        if key.startswith("gradient_")
    }
    positions_samples = arrays.get("positions_samples")
    return Descriptor(
        values=np.asarray(arrays["values"]),
        samples=np.asarray(arrays["samples"]),
        properties=np.asarray(arrays["properties"]),
        property_names=tuple(str(n) for n in arrays["property_names"]),
        gradients=gradients,
        positions_samples=None if positions_samples is None else np.asarray(positions_samples),
        sample_names=tuple(str(n) for n in arrays["sample_names"]),
    )
