"""Runs the engine benchmarks on two builds of farfield, interleaved, and prints new/old ratios.

Checks "no engine's benchmark slower than before" across a development round: build the old
commit in its own worktree and virtual environment, e.g.

    git worktree add /work/wt-old a7792da
    cp -a .venv /work/wt-old/.venv && (cd /work/wt-old && maturin develop --release)

then ``python benches/python/compare_builds.py --old /work/wt-old/.venv/bin/python
--old-benches /work/wt-old/benches/python [--rounds 3] [--only ewald,pme]``.

Each benchmark below runs in a quick configuration (well under a minute each) with the current
scripts (``--new-benches``, default: this folder) for both builds, except where the current
script needs an API the old build lacks (``OLD_SCRIPT``: there the old commit's script, same
workload). The rounds alternate which build goes first; every time cell of a farfield row is
reduced to its minimum over the rounds, per build, and the table gives new/old (< 1: faster
now). Peer codes are not run (their modules are blocked, so the scripts skip them;
subprocesses the scripts start for farfield cases are not affected) and their rows and columns
(and numpy's) are left out, and so are errors, memory and ratios. Everything runs under
``nice`` with 2 threads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: name -> (script, arguments, extra environment): quick configurations
CASES: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "ewald": ("bench_ewald.py", ["--quick"], {}),
    # one case per process, as the script's own table runs them; its JSON has full precision
    "pme-1000": ("bench_pme.py", ["--one", "farfield-pme", "1000"], {}),
    "pme-10000": ("bench_pme.py", ["--one", "farfield-pme", "10000"], {}),
    "pme-ewald-1000": ("bench_pme.py", ["--one", "farfield-ewald", "1000"], {}),
    "lode": (
        "bench_lode.py",
        [
            "--sizes",
            "64",
            "216",
            "--water",
            "64",
            "--max-featomic-values",
            "0",
            "--max-featomic-gradients",
            "0",
            "--max-dense-gradients",
            "216",
            "--mesh-sizes",
            "1000",
            "3000",
        ],
        {},
    ),
    "descriptors": ("bench_descriptors.py", ["--backward"], {"FARFIELD_BENCH_QUICK": "1"}),
    "qeq": (
        "bench_qeq.py",
        ["--sizes", "1000", "10000", "--dense-max", "0", "--ewald-check-max", "0"],
        {},
    ),
    "triplets": ("bench_triplets.py", ["--n-clusters", "200"], {}),
}
#: benchmarks whose current script calls an API the old build lacks: run the old script there
OLD_SCRIPT = {"triplets", "qeq", "descriptors"}

PEERS = ("featomic", "dscribe", "pymatgen", "torch", "openmm", "numpy")
#: a column is a time when its header says so, and is not a peer's, a ratio or a size
TIME_HEADER = re.compile(r"\((m?s)\)|wall|cpu|^ff |time", re.IGNORECASE)
NOT_TIME = re.compile(r"speed-up|/ values|mb|rss|error|vs|/s\b|" + "|".join(PEERS), re.I)
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


#: runs a script with the peers' modules blocked (imported as missing: their columns are skipped)
RUNNER = (
    "import runpy, sys\n"
    "for m in {peers!r}: sys.modules[m] = None\n"
    "sys.argv = [{script!r}, *sys.argv[1:]]\n"
    "runpy.run_path({script!r}, run_name='__main__')\n"
)
BLOCKED = ("pymatgen", "featomic", "dscribe", "torch", "torchpme", "openmm", "metatensor")


def run(python: str, script: Path, args: list[str], env: dict[str, str]) -> tuple[str, float]:
    code = RUNNER.format(peers=BLOCKED, script=str(script))
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1", RAYON_NUM_THREADS="2", **env)
    environment.pop("VIRTUAL_ENV", None)
    start = time.perf_counter()
    proc = subprocess.run(
        ["nice", python, "-c", code, *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=script.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{python} {script} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout, time.perf_counter() - start


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Markdown tables of ``text``: (header cells, rows of cells)."""
    found: list[tuple[list[str], list[list[str]]]] = []
    lines = [line.strip() for line in text.splitlines()]
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            found.append((header, rows))
        else:
            i += 1
    return found


def timings(text: str) -> dict[tuple[str, str], float]:
    """{(row label, column header): seconds or ms as printed} for farfield rows/time columns.
    Cells holding "wall / CPU" give two entries. A last line holding a JSON object (a single
    case) gives its "time" and "cpu"."""
    out: dict[tuple[str, str], float] = {}
    lines = text.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        case = json.loads(lines[-1])
        return {("case", key): float(case[key]) for key in ("time", "cpu") if key in case}
    for t, (header, rows) in enumerate(tables(text)):
        columns = [
            j for j, h in enumerate(header) if TIME_HEADER.search(h) and not NOT_TIME.search(h)
        ]
        for r, row in enumerate(rows):
            if any(p in cell.lower() for cell in row[:3] for p in PEERS):
                continue
            label = f"T{t}: " + " | ".join(
                cell
                for j, cell in enumerate(row[:3])
                if j not in columns and not NOT_TIME.search(header[j])
            )
            for j in columns:
                if j >= len(row):
                    continue
                parts = [p for p in row[j].split("/")]
                names = (
                    [header[j]] if len(parts) == 1 else [f"{header[j]} wall", f"{header[j]} CPU"]
                )
                for name, part in zip(names, parts, strict=False):
                    m = NUMBER.fullmatch(part.strip())
                    if m:
                        out[(f"{label} #{r}", name)] = float(m.group())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", required=True, help="python of the old build's venv")
    parser.add_argument("--new", default=sys.executable, help="python of the new build's venv")
    parser.add_argument("--old-benches", type=Path, help="the old commit's benches/python")
    parser.add_argument("--new-benches", type=Path, default=HERE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--raw", type=Path, help="folder to keep every run's output in")
    args = parser.parse_args()
    if args.raw:
        args.raw.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}\n")
    print("| benchmark | row | column | old | new | new/old |\n|---|---|---|---|---|---|")
    summary = []
    for name in args.only.split(","):
        script, extra, env = CASES[name]
        old_dir = args.old_benches if name in OLD_SCRIPT and args.old_benches else args.new_benches
        best: dict[str, dict[tuple[str, str], float]] = {"old": {}, "new": {}}
        wall = {"old": 0.0, "new": 0.0}
        for k in range(args.rounds):
            order = ("old", "new") if k % 2 == 0 else ("new", "old")
            for build in order:
                python = args.old if build == "old" else args.new
                folder = old_dir if build == "old" else args.new_benches
                text, seconds = run(python, folder / script, extra, env)
                wall[build] += seconds
                if args.raw:
                    (args.raw / f"{name}_{build}_{k}.md").write_text(text)
                for key, value in timings(text).items():
                    best[build][key] = min(value, best[build].get(key, math.inf))
        for build in ("old", "new"):
            if not best[build]:
                print(f"| {name} | no timings from the {build} build (see --raw) | | | | |")
        ratios = []
        for key in best["new"]:
            if key not in best["old"]:
                continue
            old, new = best["old"][key], best["new"][key]
            ratio = new / old if old > 0 else math.nan
            ratios.append(ratio)
            print(f"| {name} | {key[0]} | {key[1]} | {old:g} | {new:g} | {ratio:.3f} |", flush=True)
        finite = [r for r in ratios if math.isfinite(r) and r > 0]
        if finite:
            geo = math.exp(sum(math.log(r) for r in finite) / len(finite))
            summary.append((name, len(finite), geo, max(finite), wall["old"], wall["new"]))
    print(
        "\n| benchmark | cells | geometric mean new/old | max new/old | script wall old (s) "
        "| new (s) |\n|---|---|---|---|---|---|"
    )
    for name, count, geo, worst, w_old, w_new in summary:
        print(f"| {name} | {count} | {geo:.3f} | {worst:.3f} | {w_old:.0f} | {w_new:.0f} |")
    print(f"\nload average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
