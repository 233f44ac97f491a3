"""farfield demonstration (extended as engines land)."""

from __future__ import annotations

import numpy as np

import farfield as ff


def main() -> None:
    print(f"farfield {ff.__version__}, {ff.get_num_threads()} threads")
    system = ff.System(
        positions=np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), numbers=np.array([11, 17])
    )
    print(f"a system of {len(system)} atoms")


if __name__ == "__main__":
    main()
