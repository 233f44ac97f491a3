"""farfield.dask throughput: featurise 10^4 small periodic structures (8-16 atoms of H, C, O) with
the SOAP power spectrum, in this process and on a local dask.distributed cluster of 2 worker
processes (1 Dask thread and 1 farfield thread each). Markdown table: structures per second and
peak memory (max RSS) of each process that computed.

Two inputs: ``files`` (10 extended-XYZ shards of 1000 structures read by the workers, results
written as npz shards: the whole path of a real run, ASE's parser included) and ``list`` (the
structures in the client's memory, scattered to the workers, arrays returned). The in-process
runs use 2 farfield threads (the same 2 cores), each in a fresh subprocess so that its peak
memory is its own. The cluster's start-up is timed apart. The two paths give identical numbers
(checked).

    python benches/python/bench_dask.py [--n 10000] [--shard-size 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import farfield as ff
from farfield import dask as ffd

SPECIES = [1, 6, 8]


def calculator() -> ff.PowerSpectrum:
    return ff.PowerSpectrum(cutoff=4.0, max_radial=5, max_angular=4, smearing=0.3, species=SPECIES)


def structures(n: int, seed: int = 0) -> list[Any]:
    """``n`` random periodic boxes of 8-16 atoms at ~0.1 atoms/Å³, no pair closer than 0.9 Å."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        count = int(rng.integers(8, 17))
        length = (count / 0.1) ** (1 / 3)
        positions = np.empty((0, 3))
        while len(positions) < count:
            trial = rng.uniform(0, length, 3)
            delta = positions - trial
            delta -= length * np.round(delta / length)
            if len(positions) == 0 or np.min(np.linalg.norm(delta, axis=1)) > 0.9:
                positions = np.vstack([positions, trial])
        numbers = rng.choice(SPECIES, size=count)
        out.append(Atoms(numbers=numbers, positions=positions, cell=[length] * 3, pbc=True))
    return out


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_process(mode: str, data: str, output: str, threads: int, n: int, shard: int) -> None:
    """Run in a fresh subprocess: one in-process pass, JSON on stdout."""
    if mode == "files":
        dataset: Any = sorted(str(p) for p in Path(data).glob("*.extxyz"))
    else:
        dataset = structures(n)
    before = max_rss_mib()
    start = time.perf_counter()
    result = ffd.compute(
        calculator(),
        dataset,
        shard_size=shard,
        threads=threads,
        output=output if mode == "files" else None,
    )
    wall = time.perf_counter() - start
    if mode == "list":
        np.save(Path(output) / "values.npy", ffd.load(result)["values"])
    print(json.dumps({"wall": wall, "rss_before": before, "rss_peak": max_rss_mib()}))


def run_in_process(mode: str, data: str, output: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--in-process",
        mode,
        "--data",
        data,
        "--output",
        output,
        "--n",
        str(args.n),
        "--shard-size",
        str(args.shard_size),
        "--threads",
        str(args.workers),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--in-process", choices=["files", "list"])
    parser.add_argument("--data")
    parser.add_argument("--output")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.in_process:
        in_process(args.in_process, args.data, args.output, args.threads, args.n, args.shard_size)
        return

    import ase.io
    from dask.distributed import Client, LocalCluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    frames = structures(args.n)
    n_atoms = sum(len(f) for f in frames)
    for i in range(0, args.n, args.shard_size):
        ase.io.write(
            tmp / f"shard-{i // args.shard_size:04d}.extxyz", frames[i : i + args.shard_size]
        )
    files = sorted(str(p) for p in tmp.glob("*.extxyz"))

    rows = []
    for mode in ("files", "list"):
        here_dir = tmp / f"here-{mode}"
        here_dir.mkdir()
        here = run_in_process(mode, str(tmp), str(here_dir), args)
        rows.append(
            (
                mode,
                "in-process",
                f"{args.workers} farfield threads",
                here["wall"],
                [here["rss_peak"]],
            )
        )

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("farfield"))
        startup = time.perf_counter() - start
        for mode in ("files", "list"):
            out_dir = tmp / f"cluster-{mode}"
            start = time.perf_counter()
            if mode == "files":
                result = ffd.compute(calculator(), files, client=client, output=out_dir)
            else:
                result = ffd.compute(
                    calculator(), frames, client=client, shard_size=args.shard_size
                )
            wall = time.perf_counter() - start
            peaks = list(client.run(max_rss_mib).values())
            if mode == "files":
                same = np.array_equal(
                    ffd.load(out_dir)["values"], ffd.load(tmp / "here-files")["values"]
                )
            else:
                same = np.array_equal(
                    ffd.load(result)["values"], np.load(tmp / "here-list" / "values.npy")
                )
            rows.append(
                (
                    mode,
                    f"LocalCluster {args.workers}×1",
                    "1 farfield thread per worker",
                    wall,
                    peaks,
                    same,
                )
            )

    load = os.getloadavg()
    print(
        f"\n{args.n} structures ({n_atoms} atoms), PowerSpectrum(cutoff 4, n_max 5, l_max 4, "
        f"3 species), shards of {args.shard_size}; cluster start-up {startup:.1f} s; "
        f"load average {load[0]:.1f} / {load[1]:.1f} (shared machine, {os.cpu_count()} cores)\n"
    )
    print(
        "| input | where | threads | wall (s) | structures/s | peak RSS per process (MiB) | "
        "same numbers as in-process |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        mode, where, threads, wall, peaks = row[:5]
        same = "(ref)" if len(row) == 5 else str(row[5])
        rss = ", ".join(f"{p:.0f}" for p in peaks)
        print(
            f"| {mode} | {where} | {threads} | {wall:.2f} | {args.n / wall:.0f} | {rss} | {same} |"
        )


if __name__ == "__main__":
    main()
