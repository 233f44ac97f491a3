"""The demonstrations behind ``farfield demo NAME`` and ``make demo`` (a private subpackage,
imported lazily by the command line).

* ``point-charges``: the first application of the LODE paper (Grisafi & Ceriotti, J. Chem. Phys.
  151, 204105 (2019)): electrostatic energies of random periodic boxes of ±1 point charges are
  learned by long-range LODE features and not by local ones (learning curves, table and plot).
* ``dispersion``: the same boxes labelled with a 1/r⁶ energy; LODE with p = 6 against p = 1.
* ``degenerate``: structures the power spectrum and the bispectrum cannot tell apart, and the
  triplet features that can.
* ``qeq``: charge equilibration of a charged cluster and of a periodic cell.

Each demonstration prints its tables, writes its figures (PNG, when matplotlib is installed) and
a ``results.json`` into ``output`` and returns an exit status (0: ran and its claims held).
"""

from __future__ import annotations

import importlib
import pathlib

__all__ = ["NAMES", "run"]

#: the demonstrations, in the order ``farfield demo --help`` lists them
NAMES = ("point-charges", "dispersion", "degenerate", "qeq")


def run(
    name: str,
    *,
    quick: bool = False,
    output: pathlib.Path | None = None,
    progress: bool = True,
) -> int:
    """Runs one demonstration, prints its tables, writes its PNG(s) into ``output`` (default:
    ``cwd/"farfield-demo-<name>"``) and returns an exit status: 0 when it ran and the claims
    it checks held, 1 when a claim failed.

    Args:
        name: one of :data:`NAMES`.
        quick: a small version (a few seconds), for tests.
        output: folder for the figures and ``results.json`` (created if missing).
        progress: show progress bars (tqdm, when installed).
    """
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"unknown demonstration {name!r}, expected one of {', '.join(NAMES)}")
    folder = pathlib.Path.cwd() / f"farfield-demo-{name}" if output is None else output
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f".{name.replace('-', '_')}", __name__)
    status: int = module.main(quick=bool(quick), output=folder, progress=bool(progress))
    return status
