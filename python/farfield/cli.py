"""The ``farfield`` command line.

Subcommands: ``energy`` (Coulomb or 1/r^p energy, forces and stress of every frame),
``featurize`` (SOAP, power spectrum, LODE, triplet features), ``qeq`` (charge equilibration),
``demo`` (the demonstrations) and ``info`` (version, threads, vector instructions).

Errors (a missing or unreadable file, frames without charges, an unknown element in a parameter
file, bad options or parameters, invalid structures) are reported as one line
``farfield: error: ...`` on stderr with exit status 2 (1 for a failed computation, 130 for
Ctrl-C); ``--debug`` shows the Python traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import _native
from .coulomb import Coulomb
from .units import EV_ANGSTROM, HARTREE_ANGSTROM, KCAL_MOL_ANGSTROM, KJ_MOL_ANGSTROM

__all__ = ["CommandError", "main", "parse_charges"]

#: energy units of ``--units``: (prefactor for positions in Å and charges in e, column label)
UNITS: dict[str, tuple[float, str]] = {
    "eV": (EV_ANGSTROM, "eV"),
    "kcal/mol": (KCAL_MOL_ANGSTROM, "kcal_per_mol"),
    "kJ/mol": (KJ_MOL_ANGSTROM, "kJ_per_mol"),
    "hartree": (HARTREE_ANGSTROM, "Eh"),
    "gaussian": (1.0, "e2_per_A"),
}

#: the names ``farfield._demos`` provides (listed here for ``--help`` only; the module's own
#: ``NAMES`` decides)
DEMO_NAMES = ("point-charges", "dispersion", "degenerate", "qeq")


class CommandError(Exception):
    """A user error of the command line (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``farfield: error: ...``) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"farfield: error: {message} (see {self.prog} --help)\n")


# --------------------------------------------------------------------------------------------
# reading files


@dataclass
class Frame:
    """One structure of an input file."""

    path: str
    index: int
    atoms: Any

    @property
    def where(self) -> str:
        return f"frame {self.index} of {self.path}"


def _read(path: str) -> list[Any]:
    try:
        import ase.io
    except ImportError:
        raise CommandError("reading structure files needs ASE (pip install ase)") from None

    try:
        frames = ase.io.read(path, index=":")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory, not a structure file") from None
    except PermissionError:
        raise CommandError(f"{path}: permission denied") from None
    except Exception as error:  # ase raises many kinds of errors for malformed files
        message = str(error) or type(error).__name__
        raise CommandError(f"{path}: cannot read it as a structure file ({message})") from error
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise CommandError(f"{path}: no frames found")
    return frames


def _read_all(paths: Sequence[str]) -> list[Frame]:
    """Every frame of every file, in order (all files are read before any work starts)."""
    return [Frame(path, i, atoms) for path in paths for i, atoms in enumerate(_read(path))]


def load_mapping(path: str, what: str) -> dict[str, Any]:
    """A JSON (or, with PyYAML installed, YAML) file holding a mapping, for ``--params`` and
    ``--config``; every problem is a :class:`CommandError` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{what} {path}: is a directory") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{what} {path}: cannot read it ({error})") from None
    data: Any
    if Path(path).suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise CommandError(
                f"{what} {path}: reading YAML needs PyYAML (pip install pyyaml); "
                "or write the file as JSON"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            first = str(error).strip().splitlines()
            raise CommandError(
                f"{what} {path}: invalid YAML ({' '.join(s.strip() for s in first)})"
            ) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"{what} {path}: invalid JSON ({error})") from None
    if not isinstance(data, dict):
        raise CommandError(
            f"{what} {path}: expected a mapping of names to values, got {type(data).__name__}"
        )
    return data


# --------------------------------------------------------------------------------------------
# charges


def _symbol(key: Any, where: str) -> str:
    from ase.data import chemical_symbols

    if not isinstance(key, str) or key not in chemical_symbols[1:]:
        raise CommandError(f"{where}: unknown element {key!r}")
    return key


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise CommandError(f"{where} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CommandError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise CommandError(f"{where} must be finite, got {value!r}")
    return number


def parse_charges(text: str) -> dict[str, float]:
    """A per-element charge map from ``"Na=1,Cl=-1"`` or JSON ``'{"Na": 1, "Cl": -1}'``."""
    text = text.strip()
    if not text:
        raise CommandError("--charges is empty; expected e.g. --charges Na=1,Cl=-1")
    items: list[tuple[Any, Any]]
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"--charges: invalid JSON ({error})") from None
        if not isinstance(data, dict):  # pragma: no cover - "{" starts an object
            raise CommandError("--charges: expected a JSON object of element: charge")
        items = list(data.items())
    else:
        items = []
        for entry in text.split(","):
            if entry.count("=") != 1:
                raise CommandError(
                    f"--charges: expected element=charge entries separated by commas "
                    f"(e.g. Na=1,Cl=-1), got {entry.strip()!r}"
                )
            key, value = entry.split("=")
            items.append((key.strip(), value.strip()))
    out: dict[str, float] = {}
    for key, value in items:
        symbol = _symbol(key, "--charges")
        charge = _number(value, f"--charges: the charge of {symbol}")
        if symbol in out:
            raise CommandError(f"--charges: element {symbol} is given twice")
        out[symbol] = charge
    return out


def _frame_charges(frame: Frame, charge_map: Mapping[str, float] | None) -> np.ndarray[Any, Any]:
    """The charges of one frame: from the per-element map when given, else from the file."""
    atoms = frame.atoms
    symbols = atoms.get_chemical_symbols()
    if charge_map is not None:
        missing = sorted({s for s in symbols if s not in charge_map})
        if missing:
            raise CommandError(f"{frame.where}: --charges gives no charge for {', '.join(missing)}")
        return np.array([charge_map[s] for s in symbols], dtype=np.float64)
    if atoms.has("initial_charges"):
        return np.asarray(atoms.get_initial_charges(), dtype=np.float64)
    if "charges" in atoms.arrays:
        return np.asarray(atoms.arrays["charges"], dtype=np.float64)
    calc = getattr(atoms, "calc", None)
    results = getattr(calc, "results", None) or {}
    if "charges" in results:
        return np.asarray(results["charges"], dtype=np.float64)
    raise CommandError(
        f"{frame.where} has no charges (formats such as CIF or plain xyz cannot "
        f"carry them): give a charge per element with --charges, e.g. --charges Na=1,Cl=-1, "
        f"compute them with --qeq PARAMS.json, or use an extended xyz file with an "
        f"initial_charges column"
    )


# --------------------------------------------------------------------------------------------
# QEq parameter files

_QEQ_PER_ELEMENT = ("electronegativity", "hardness", "sigma")
_QEQ_OPTIONS = (
    "total_charge",
    "solver",
    "tolerance",
    "smearing",
    "ewald_truncation",
    "max_iterations",
    "dense_limit",
    "kspace",
    "preconditioner",
)


@dataclass
class QEqParameters:
    """A QEq parameter file: per-element χ, J, σ, the energy unit and the solver options."""

    path: str
    per_element: dict[str, dict[str, float]]
    units: str
    options: dict[str, Any]

    @classmethod
    def load(cls, path: str) -> QEqParameters:
        data = load_mapping(path, "--params")
        unknown = sorted(set(data) - {*_QEQ_PER_ELEMENT, *_QEQ_OPTIONS, "units"})
        if unknown:
            known = ", ".join([*_QEQ_PER_ELEMENT, "units", *_QEQ_OPTIONS])
            raise CommandError(f"{path}: unknown key {unknown[0]!r} (known: {known})")
        per_element: dict[str, dict[str, float]] = {}
        for name in _QEQ_PER_ELEMENT:
            if name not in data:
                raise CommandError(
                    f"{path}: no {name!r}; give it per element, e.g. "
                    f'"{name}": {{"Na": ..., "Cl": ...}}'
                )
            table = data[name]
            if not isinstance(table, dict) or not table:
                raise CommandError(
                    f"{path}: {name!r} must map element symbols to numbers, got {table!r}"
                )
            per_element[name] = {
                _symbol(k, f"{path}: {name}"): _number(v, f"{path}: {name} of {k}")
                for k, v in table.items()
            }
        units = data.get("units", "eV")
        if units not in UNITS:
            raise CommandError(
                f"{path}: units must be one of {', '.join(UNITS)} (the energy unit of "
                f"electronegativity and hardness), got {units!r}"
            )
        options = {k: data[k] for k in _QEQ_OPTIONS if k in data}
        return cls(path, per_element, units, options)

    @property
    def prefactor(self) -> float:
        return UNITS[self.units][0]

    def check(self, frame: Frame) -> None:
        """Every element of ``frame`` has its three parameters."""
        symbols = set(frame.atoms.get_chemical_symbols())
        for name, table in self.per_element.items():
            missing = sorted(symbols - set(table))
            if missing:
                raise CommandError(
                    f"{frame.where}: {self.path} gives no {name} for {', '.join(missing)}"
                )

    def calculator(self, total_charge: float | None) -> Any:
        from .qeq import QEq

        options = dict(self.options)
        if total_charge is not None:
            options["total_charge"] = total_charge
        try:
            return QEq(**{**self.per_element, **options, "prefactor": self.prefactor})
        except (ValueError, TypeError) as error:
            raise CommandError(f"{self.path}: {error}") from error


# --------------------------------------------------------------------------------------------
# progress and output


def _show_progress(args: argparse.Namespace) -> bool:
    """A progress bar on a terminal unless ``--quiet`` (none in logs and pipes)."""
    return not args.quiet and sys.stderr.isatty()


def _progress(items: Iterable[Any], enabled: bool, total: int, desc: str) -> Iterable[Any]:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return items
    return tqdm(items, total=total, desc=desc, file=sys.stderr)  # type: ignore[no-any-return]


class _Bar:
    """A tqdm bar updated by hand (nothing when disabled or without tqdm)."""

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self._bar: Any = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover
                return
            self._bar = tqdm(total=total, desc=desc, file=sys.stderr)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


_STRUCTURE_SUFFIXES = (".extxyz", ".xyz")


def _check_output(path: str | None, suffixes: Sequence[str]) -> Path | None:
    """The output path, checked before any work: a known format, an existing directory."""
    if path is None:
        return None
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise CommandError(
            f"-o {path}: unknown output format {out.suffix or '(no extension)'!r}; "
            f"use one of {', '.join(suffixes)}"
        )
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CommandError(f"-o {path}: directory {parent} does not exist")
    if out.is_dir():
        raise CommandError(f"-o {path}: is a directory")
    return out


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """Maps an OSError while writing ``path`` to a one-line error."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise CommandError(f"{path}: cannot write it ({reason})") from error


@dataclass
class _Record:
    """What ``energy`` and ``qeq`` computed for one frame."""

    frame: Frame
    energy: float
    forces: np.ndarray[Any, Any]
    stress: np.ndarray[Any, Any] | None
    charges: np.ndarray[Any, Any]
    method: str


def _write_records(
    path: Path, records: Sequence[_Record], units: str, extra: Mapping[str, Any]
) -> None:
    """extxyz (calculator results energy, forces, stress, charges) or npz (arrays)."""
    with _writing(path):
        if path.suffix.lower() == ".npz":
            offsets = np.cumsum([0] + [len(r.frame.atoms) for r in records])
            empty = np.zeros((0, 3))
            arrays: dict[str, Any] = dict(
                energy=np.array([r.energy for r in records]),
                forces=np.concatenate([r.forces for r in records]) if records else empty,
                stress=np.array(
                    [np.full((3, 3), np.nan) if r.stress is None else r.stress for r in records]
                ).reshape(-1, 3, 3),
                charges=np.concatenate([r.charges for r in records]) if records else np.zeros(0),
                frame_offsets=offsets,
                numbers=np.concatenate([r.frame.atoms.numbers for r in records]),
                positions=np.concatenate([r.frame.atoms.positions for r in records]),
                cells=np.array(
                    [
                        np.asarray(r.frame.atoms.cell)
                        if r.frame.atoms.pbc.all()
                        else np.full((3, 3), np.nan)
                        for r in records
                    ]
                ).reshape(-1, 3, 3),
                frame_files=np.array([r.frame.path for r in records]),
                frame_indices=np.array([r.frame.index for r in records]),
                methods=np.array([r.method for r in records]),
                units=np.array(units),
                **{k: np.asarray(v) for k, v in extra.items()},
            )
            np.savez(path, **arrays)
            return
        import ase.io
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.stress import full_3x3_to_voigt_6_stress

        frames = []
        for r in records:
            atoms = r.frame.atoms.copy()
            atoms.calc = None
            results: dict[str, Any] = {
                "energy": r.energy,
                "forces": r.forces,
                "charges": r.charges,
            }
            if r.stress is not None:
                results["stress"] = full_3x3_to_voigt_6_stress(r.stress)  # type: ignore[no-untyped-call]
            atoms.info["energy_units"] = units
            atoms.info["farfield_method"] = r.method
            for k, v in extra.items():
                atoms.info[k] = v
            atoms.calc = SinglePointCalculator(atoms, **results)  # type: ignore[no-untyped-call]
            frames.append(atoms)
        ase.io.write(path, frames, format="extxyz")


def _max_force(forces: np.ndarray[Any, Any]) -> float:
    return float((forces**2).sum(axis=1).max() ** 0.5) if len(forces) else 0.0


# --------------------------------------------------------------------------------------------
# energy


def _energy_command(args: argparse.Namespace) -> int:
    prefactor, label = UNITS[args.units]
    _check_accuracy(args)
    out = _check_output(args.output, (*_STRUCTURE_SUFFIXES, ".npz"))
    charge_map = None if args.charges is None else parse_charges(args.charges)
    params = None if args.qeq is None else QEqParameters.load(args.qeq)
    try:
        calculator = Coulomb(
            exponent=args.exponent, accuracy=args.accuracy, method=args.method, prefactor=prefactor
        )
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from error
    frames = _read_all(args.files)
    # every frame's charges (or QEq parameters) are checked before any output
    charges: list[np.ndarray[Any, Any] | None] = []
    for frame in frames:
        if params is not None:
            params.check(frame)
            charges.append(None)
        else:
            charges.append(_frame_charges(frame, charge_map))
    qeq = None if params is None else params.calculator(args.total_charge)
    if out is None:
        print(f"file,frame,energy_{label},max_force_{label}_per_A")
    records = []
    for frame, q in _progress(
        zip(frames, charges, strict=True), _show_progress(args), len(frames), "frames"
    ):
        try:
            if q is None:
                assert qeq is not None
                q = qeq.compute(frame.atoms).charges
            result = calculator.compute(frame.atoms, q, stress=True)
        except ValueError as error:
            raise CommandError(f"{frame.where}: {error}") from error
        assert result.forces is not None
        record = _Record(
            frame, result.energy, result.forces, result.stress, q, result.parameters.method
        )
        if out is None:
            print(
                f"{frame.path},{frame.index},{result.energy:.10g},{_max_force(result.forces):.6g}"
            )
        else:
            records.append(record)
    if out is not None:
        extra = {"exponent": args.exponent, "accuracy": args.accuracy}
        _write_records(out, records, args.units, extra)
        if not args.quiet:
            print(f"farfield: wrote {len(records)} frames to {out}", file=sys.stderr)
    return 0


def _check_accuracy(args: argparse.Namespace) -> None:
    if not 1e-15 <= args.accuracy < 1:
        raise CommandError(
            f"--accuracy must be in [1e-15, 1) (relative RMS force error), got {args.accuracy}"
        )
    if not (math.isfinite(args.exponent) and args.exponent > 0):
        raise CommandError(f"--exponent must be positive (p in 1/r^p), got {args.exponent}")


def _ewald_command(args: argparse.Namespace) -> int:
    """The old ``ewald`` subcommand: one file, eV, a CSV table."""
    _check_accuracy(args)
    charge_map = None if args.charges is None else parse_charges(args.charges)
    frames = _read_all([args.file])
    charges = [_frame_charges(frame, charge_map) for frame in frames]
    print("frame,energy_eV,max_force_eV_per_A")
    try:
        # one calculator for the trajectory: frames of one cell are tuned once
        calculator = Coulomb(exponent=args.exponent, accuracy=args.accuracy, prefactor=EV_ANGSTROM)
    except ValueError as error:
        raise CommandError(str(error)) from error
    for frame, q in _progress(
        zip(frames, charges, strict=True), _show_progress(args), len(frames), "frames"
    ):
        try:
            result = calculator.compute(frame.atoms, q, stress=False)
        except ValueError as error:
            raise CommandError(f"{frame.where}: {error}") from error
        assert result.forces is not None
        print(f"{frame.index},{result.energy:.10g},{_max_force(result.forces):.6g}")
    return 0


# --------------------------------------------------------------------------------------------
# qeq


def _qeq_command(args: argparse.Namespace) -> int:
    out = _check_output(args.output, (*_STRUCTURE_SUFFIXES, ".npz"))
    params = QEqParameters.load(args.params)
    frames = _read_all(args.files)
    for frame in frames:
        params.check(frame)
    calculator = params.calculator(args.total_charge)
    label = UNITS[params.units][1]
    if out is None:
        print(f"file,frame,energy_{label},max_force_{label}_per_A,total_charge,iterations")
    records = []
    for frame in _progress(frames, _show_progress(args), len(frames), "frames"):
        try:
            result = calculator.compute(frame.atoms)
        except ValueError as error:
            raise CommandError(f"{frame.where}: {error}") from error
        assert result.forces is not None
        if out is None:
            total = round(float(result.charges.sum()), 9) + 0.0  # no "-0.000000"
            print(
                f"{frame.path},{frame.index},{result.energy:.10g},"
                f"{_max_force(result.forces):.6g},{total:.6f},{result.iterations}"
            )
        else:
            records.append(
                _Record(
                    frame,
                    result.energy,
                    result.forces,
                    result.stress,
                    result.charges,
                    f"qeq-{result.solver}",
                )
            )
    if out is not None:
        _write_records(out, records, params.units, {})
        if not args.quiet:
            print(f"farfield: wrote {len(records)} frames to {out}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------
# featurize

_SOAP_KEYS = (
    "cutoff",
    "max_radial",
    "max_angular",
    "smearing",
    "cutoff_function",
    "cutoff_width",
    "center_atom_weight",
    "radial_accuracy",
    "species",
)
_SOAP_DEFAULTS: dict[str, Any] = {"cutoff": 5.0, "max_radial": 6, "max_angular": 4, "smearing": 0.3}

#: kind: (accepted keywords, defaults)
FEATURES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "soap": (_SOAP_KEYS, _SOAP_DEFAULTS),
    "power-spectrum": (_SOAP_KEYS, _SOAP_DEFAULTS),
    "lode": (
        (
            "exponent",
            "smearing",
            "max_angular",
            "max_radial",
            "radius",
            "basis",
            "k_cutoff",
            "center_atom_weight",
            "drop_divergent_k0",
            "species",
            "method",
            "mesh_accuracy",
        ),
        {"exponent": 1.0, "smearing": 1.0, "max_angular": 4, "max_radial": 5, "radius": 3.0},
    ),
    "triplets": (
        ("cutoff", "max_radial", "max_angular", "smearing", "cutoff_width", "species"),
        {},
    ),
}

#: command-line options of ``featurize`` that set a hyper-parameter (dest = keyword)
_FEATURE_OPTIONS = (
    ("--cutoff", float, "cutoff radius (Å) of the local features"),
    ("--max-radial", int, "index of the last radial function"),
    ("--max-angular", int, "largest angular channel l"),
    ("--smearing", float, "Gaussian width σ (Å) of the atomic densities"),
    ("--cutoff-width", float, "width (Å) of the smooth cutoff"),
    ("--center-atom-weight", float, "weight of the centre's own density"),
    ("--exponent", float, "LODE: p of the 1/r^p potential (1: Coulomb)"),
    ("--radius", float, "LODE: radius r0 (Å) of the radial basis"),
    ("--basis", str, "LODE: radial basis, gto or monomial"),
    ("--k-cutoff", float, "LODE: reciprocal-space cutoff (1/Å), periodic frames only"),
)


def _species(value: Any, where: str) -> list[int]:
    """Atomic numbers from symbols or numbers (a list, or a comma-separated string)."""
    from ase.data import atomic_numbers

    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise CommandError(f"{where}: species must be a list of elements, got {value!r}")
    out = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if item.isdigit():
                out.append(int(item))
                continue
            if item not in atomic_numbers or item == "X":
                raise CommandError(f"{where}: unknown element {item!r} in species")
            out.append(atomic_numbers[item])
        elif isinstance(item, int) and not isinstance(item, bool) and item > 0:
            out.append(item)
        else:
            raise CommandError(f"{where}: unknown element {item!r} in species")
    return sorted(set(out))


def _feature_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The hyper-parameters of each selected kind: defaults < config file < options."""
    config: dict[str, Any] = {} if args.config is None else load_mapping(args.config, "--config")
    config = {str(k).replace("-", "_"): v for k, v in config.items()}
    sections = {
        k.replace("_", "-"): v for k, v in config.items() if k.replace("_", "-") in FEATURES
    }
    flat = {k: v for k, v in config.items() if k.replace("_", "-") not in FEATURES}
    kinds = [k for k in FEATURES if getattr(args, k.replace("-", "_"))]
    if not kinds:
        kinds = list(sections)
    if not kinds:
        raise CommandError(
            "choose the features: --soap, --power-spectrum, --lode and/or --triplets "
            "(or sections of these names in --config)"
        )
    for kind, section in sections.items():
        if not isinstance(section, dict):
            raise CommandError(
                f"--config {args.config}: {kind!r} must be a mapping, got {section!r}"
            )
    given = {
        option[2:].replace("-", "_"): getattr(args, option[2:].replace("-", "_"))
        for option, _, _ in _FEATURE_OPTIONS
    }
    given = {k: v for k, v in given.items() if v is not None}
    if args.species is not None:
        given["species"] = args.species
    selected = ", ".join("--" + k for k in kinds)
    for key in [*flat, *given]:
        if any(key in FEATURES[kind][0] for kind in kinds):
            continue
        users = [k for k in FEATURES if key in FEATURES[k][0]]
        if key in given:
            where = "--" + key.replace("_", "-")
        else:
            where = f"--config {args.config}: {key!r}"
        if users:
            raise CommandError(
                f"{where} is not used by {selected} (it applies to "
                f"{', '.join('--' + k for k in users)})"
            )
        raise CommandError(f"{where}: unknown hyper-parameter")
    settings: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        accepted, defaults = FEATURES[kind]
        section = {str(k).replace("-", "_"): v for k, v in sections.get(kind, {}).items()}
        for key in section:
            if key not in accepted:
                raise CommandError(
                    f"--config {args.config}: unknown hyper-parameter {key!r} for {kind} "
                    f"(known: {', '.join(accepted)})"
                )
        merged = dict(defaults)
        merged.update({k: v for k, v in flat.items() if k in accepted})
        merged.update(section)
        merged.update({k: v for k, v in given.items() if k in accepted})
        if "species" in merged and merged["species"] is not None:
            merged["species"] = _species(merged["species"], f"--{kind}")
        settings[kind] = merged
    return settings


def _calculator(kind: str, settings: Mapping[str, Any]) -> Any:
    from . import descriptors, lode, triplets

    classes: dict[str, Any] = {
        "soap": descriptors.SphericalExpansion,
        "power-spectrum": descriptors.PowerSpectrum,
        "lode": lode.LodeSphericalExpansion,
        "triplets": triplets.TripletFeatures,
    }
    try:
        return classes[kind](**settings)
    except (ValueError, TypeError) as error:
        raise CommandError(f"--{kind}: {error}") from error


def _compute_batch(kind: str, calculator: Any, atoms: list[Any]) -> Any:
    if kind == "lode":
        return calculator.compute(atoms).to_descriptor()
    return calculator.compute(atoms)


def featurize_frames(
    kind: str, settings: Mapping[str, Any], frames: Sequence[Frame], batch: int, progress: bool
) -> Any:
    """The ``kind`` features of ``frames`` as one :class:`farfield.Descriptor` (frames are
    given to the calculator ``batch`` at a time; the calculators are multithreaded)."""
    from .descriptors import Descriptor

    settings = dict(settings)
    if settings.get("species") is None:
        # the same columns in every batch
        settings["species"] = sorted({int(z) for f in frames for z in f.atoms.numbers})
    calculator = _calculator(kind, settings)
    parts = []
    bar = _Bar(progress, len(frames), kind)
    try:
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            try:
                part = _compute_batch(kind, calculator, [f.atoms for f in chunk])
            except ValueError as error:
                where = (
                    chunk[0].where
                    if len(chunk) == 1
                    else f"{chunk[0].where} to {chunk[-1].where} (--batch 1 names the frame)"
                )
                raise CommandError(f"--{kind}, {where}: {error}") from error
            parts.append((start, part))
            bar.update(len(chunk))
    finally:
        bar.close()
    first = parts[0][1]
    samples = []
    for start, part in parts:
        s = np.array(part.samples, dtype=np.int32)
        s[:, 0] += start
        samples.append(s)
    return Descriptor(
        values=np.concatenate([p.values for _, p in parts]),
        samples=np.concatenate(samples),
        properties=np.asarray(first.properties),
        property_names=tuple(first.property_names),
        sample_names=tuple(first.sample_names),
    )


def _featurize_command(args: argparse.Namespace) -> int:
    out = _check_output(args.output, (".npz", ".mts"))
    assert out is not None
    if args.batch < 1:
        raise CommandError(f"--batch must be at least 1, got {args.batch}")
    settings = _feature_settings(args)
    metatensor = None
    if out.suffix.lower() == ".mts":
        if len(settings) != 1:
            raise CommandError(
                f"-o {out}: a metatensor file holds one kind of features; choose one of "
                f"{', '.join('--' + k for k in settings)}, or write .npz"
            )
        if "triplets" in settings:
            raise CommandError(
                f"-o {out}: triplet rows (one per neighbour pair) have no metatensor layout; "
                "write .npz"
            )
        try:
            metatensor = importlib.import_module("metatensor")
        except ImportError:
            raise CommandError(
                f"-o {out}: writing .mts needs metatensor-core (pip install metatensor-core); "
                "or write .npz"
            ) from None
    frames = _read_all(args.files)
    results = {
        kind: featurize_frames(kind, s, frames, args.batch, _show_progress(args))
        for kind, s in settings.items()
    }
    with _writing(out):
        if metatensor is not None:
            (descriptor,) = results.values()
            metatensor.save(str(out), descriptor.to_metatensor())
        else:
            arrays: dict[str, Any] = {
                "frame_files": np.array([f.path for f in frames]),
                "frame_indices": np.array([f.index for f in frames]),
                "kinds": np.array(list(results)),
            }
            for kind, d in results.items():
                prefix = "" if len(results) == 1 else f"{kind}/"
                arrays[prefix + "values"] = d.values
                arrays[prefix + "samples"] = d.samples
                arrays[prefix + "sample_names"] = np.array(d.sample_names)
                arrays[prefix + "properties"] = d.properties
                arrays[prefix + "property_names"] = np.array(d.property_names)
                arrays[prefix + "hyperparameters"] = np.array(
                    json.dumps(settings[kind], sort_keys=True)
                )
            np.savez(out, **arrays)
    if not args.quiet:
        shapes = ", ".join(
            f"{k} {d.values.shape[0]}x{d.values.shape[1]}" for k, d in results.items()
        )
        print(
            f"farfield: wrote {shapes} features of {len(frames)} frames to {out}", file=sys.stderr
        )
    return 0


# --------------------------------------------------------------------------------------------
# demo and info


def _demo_command(args: argparse.Namespace) -> int:
    try:
        demos: Any = importlib.import_module("farfield._demos")
    except ModuleNotFoundError as error:
        if error.name in ("farfield._demos", "farfield"):
            raise CommandError(
                "the demonstrations (farfield._demos) are not part of this installation"
            ) from error
        raise CommandError(
            f"the demonstrations need the {error.name} package (pip install {error.name})"
        ) from error
    names = tuple(getattr(demos, "NAMES", ()))
    if args.name not in names:
        raise CommandError(f"unknown demonstration {args.name!r}; choose one of {', '.join(names)}")
    output = None
    if args.output is not None:
        output = Path(args.output)
        if output.exists() and not output.is_dir():
            raise CommandError(f"-o {output}: is a file, not a directory")
        with _writing(output):
            output.mkdir(parents=True, exist_ok=True)
    status = demos.run(args.name, quick=args.quick, output=output, progress=not args.quiet)
    return int(status or 0)


def info_lines() -> list[str]:
    """What ``farfield info`` prints: version, location, threads, vector instructions and the
    optional packages."""
    from importlib import metadata

    lines = [
        f"farfield {_native.__version__}",
        f"module: {Path(__file__).parent}",
        f"python: {sys.version.split()[0]}",
        f"threads: {_native.get_num_threads()}"
        + (
            f" (RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']})"
            if "RAYON_NUM_THREADS" in os.environ
            else ""
        ),
        f"simd: {_native.simd_level()}",
    ]
    optional = []
    for package in ("numpy", "ase", "tqdm", "metatensor-core", "PyYAML", "featomic"):
        try:
            optional.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            optional.append(f"{package} (not installed)")
    lines.append("packages: " + ", ".join(optional))
    return lines


def _info_command(args: argparse.Namespace) -> int:
    for line in info_lines():
        print(line)
    return 0


# --------------------------------------------------------------------------------------------
# the parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def _charges_option(parser: Any) -> None:
    parser.add_argument(
        "--charges",
        metavar="MAP",
        help='charge per element for every frame, e.g. Na=1,Cl=-1 or \'{"Na": 1, "Cl": -1}\' '
        "(needed for files without charges, such as CIF or plain xyz; replaces the file's "
        "charges)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``farfield`` argument parser."""
    parser = _Parser(
        prog="farfield",
        description="Long-range interactions on structure files: energy (Coulomb or 1/r^p "
        "energy, forces and stress of every frame), featurize (SOAP, power spectrum, LODE, "
        "triplet features), qeq (charge equilibration), demo (the demonstrations), info "
        "(version, threads, vector instructions). 'farfield COMMAND --help' for each.",
        epilog="Errors are one line 'farfield: error: ...' (exit status 2); --debug shows the "
        "traceback.",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error"
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of the computations (default: all cores, or RAYON_NUM_THREADS)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    en = commands.add_parser(
        "energy",
        help="Coulomb or 1/r^p energy, forces and stress of every frame",
        description="Energy, forces and stress (periodic frames) of point charges with a 1/r^p "
        "kernel for every frame of the given files (Ewald, smooth PME or the direct sum). "
        "Without -o prints one CSV line per frame.",
    )
    en.add_argument(
        "files", nargs="+", metavar="FILE", help="any file ASE reads (trajectories too)"
    )
    source = en.add_mutually_exclusive_group()
    _charges_option(source)
    source.add_argument(
        "--qeq",
        metavar="PARAMS",
        help="compute the charges of each frame by charge equilibration with this parameter "
        "file (as for `farfield qeq`)",
    )
    en.add_argument(
        "--total-charge",
        type=float,
        help="with --qeq: the total charge (default: the parameter file's, or 0)",
    )
    en.add_argument("--exponent", type=float, default=1.0, help="p in 1/r^p (default 1: Coulomb)")
    en.add_argument(
        "--accuracy",
        type=float,
        default=1e-6,
        help="relative RMS force error, in [1e-15, 1) (default 1e-6)",
    )
    en.add_argument(
        "--method",
        choices=("auto", "ewald", "pme", "direct"),
        default="auto",
        help="auto: Ewald or PME (whichever is faster) for periodic frames, direct for open ones",
    )
    en.add_argument(
        "--units",
        choices=tuple(UNITS),
        default="eV",
        help="energy unit (positions in Å, charges in e); forces per Å, stress per Å³",
    )
    en.add_argument(
        "-o", "--output", metavar="OUT", help="write the results to OUT.extxyz (or .xyz) or OUT.npz"
    )
    _common(en)

    fe = commands.add_parser(
        "featurize",
        help="SOAP, power-spectrum, LODE or triplet features of every frame",
        description="Features of every atom of every frame, written with their labels "
        "(npz: values, samples, sample_names, properties, property_names, hyperparameters; "
        "prefixed by the kind when several are asked for) or as a metatensor file (.mts). "
        "Hyper-parameters: defaults < --config FILE < options.",
    )
    fe.add_argument("files", nargs="+", metavar="FILE", help="any file ASE reads")
    kinds = fe.add_argument_group("features (one or several)")
    kinds.add_argument("--soap", action="store_true", help="SOAP spherical expansion")
    kinds.add_argument("--power-spectrum", action="store_true", help="SOAP power spectrum")
    kinds.add_argument("--lode", action="store_true", help="LODE spherical expansion")
    kinds.add_argument("--triplets", action="store_true", help="triplet features")
    hyper = fe.add_argument_group("hyper-parameters")
    for option, kind, text in _FEATURE_OPTIONS:
        metavar = {int: "N", float: "X", str: "NAME"}[kind]
        hyper.add_argument(option, type=kind, metavar=metavar, help=text)
    hyper.add_argument(
        "--species",
        metavar="LIST",
        help="neighbour species, e.g. H,O (default: every element in the files)",
    )
    hyper.add_argument(
        "--config",
        metavar="FILE",
        help="JSON (or YAML) file of hyper-parameters: keywords for every kind, or sections "
        'per kind, e.g. {"power-spectrum": {"cutoff": 4.0, "max_radial": 5}}',
    )
    fe.add_argument("-o", "--output", metavar="OUT", required=True, help="OUT.npz or OUT.mts")
    fe.add_argument(
        "--batch",
        type=int,
        default=64,
        metavar="N",
        help="frames per call of the calculator (default 64)",
    )
    _common(fe)

    qe = commands.add_parser(
        "qeq",
        help="charge equilibration: charges, energy, forces of every frame",
        description="Charge equilibration with Gaussian charges. PARAMS (JSON or YAML) maps "
        '"electronegativity", "hardness" and "sigma" each to a per-element table, e.g. '
        '{"electronegativity": {"Na": -1.0, "Cl": 1.5}, "hardness": {"Na": 6.0, "Cl": 5.0}, '
        '"sigma": {"Na": 0.8, "Cl": 1.0}}; optional: "units" (eV), "total_charge" and the '
        "solver options of farfield.QEq.",
    )
    qe.add_argument("files", nargs="+", metavar="FILE", help="any file ASE reads")
    qe.add_argument("--params", metavar="PARAMS", required=True, help="parameter file")
    qe.add_argument(
        "--total-charge", type=float, help="total charge (default: the parameter file's, or 0)"
    )
    qe.add_argument(
        "-o", "--output", metavar="OUT", help="write charges, energy, forces to OUT.extxyz or .npz"
    )
    _common(qe)

    de = commands.add_parser(
        "demo",
        help=f"run a demonstration ({', '.join(DEMO_NAMES)})",
        description=f"Run a demonstration: {', '.join(DEMO_NAMES)}.",
    )
    de.add_argument("name", metavar="NAME", help=", ".join(DEMO_NAMES))
    de.add_argument("--quick", action="store_true", help="a smaller, faster version")
    de.add_argument("-o", "--output", metavar="DIR", help="directory for tables and plots")
    _common(de)

    inf = commands.add_parser("info", help="version, threads and vector instructions in use")
    inf.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    ew = commands.add_parser(
        "ewald", help="(old name) the energy of every frame of one file, in eV, as CSV"
    )
    ew.add_argument("file", help="any file ase.io.read understands (e.g. extended xyz)")
    _charges_option(ew)
    ew.add_argument("--exponent", type=float, default=1.0, help="p in 1/r^p")
    ew.add_argument("--accuracy", type=float, default=1e-6, help="relative RMS force error")
    _common(ew)
    return parser


_COMMANDS = {
    "energy": _energy_command,
    "ewald": _ewald_command,
    "featurize": _featurize_command,
    "qeq": _qeq_command,
    "demo": _demo_command,
    "info": _info_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``farfield`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise CommandError(f"--threads must be at least 1, got {args.threads}")
            _native.set_num_threads(args.threads)
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("farfield: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError) as error:
        if args.debug:
            raise
        print(f"farfield: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if args.debug:
            raise
        print(f"farfield: error: {type(error).__name__}: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
