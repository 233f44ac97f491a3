"""Triplet descriptors: throughput on 8000 eight-atom B± clusters (2 threads) and per-centre cost
against the neighbour count M (expected ∝ M², fitted exponent printed). Markdown tables.

Settings of the paper's B8 study (cutoff 2 Å, 6 GTO radial functions, l_max 3, σ 0.2): 7344
invariants per triplet, 49 triplets per cluster centre. The full rows of 8000 clusters (3 GB)
are computed in chunks of 500 clusters and dropped; the streamed linear sum and a PCA-projected
(32 components) variant are timed as well.

    python benches/python/bench_triplets.py [--n-clusters 8000] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import farfield as ff
from farfield import structures


def timed(f, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-clusters", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    ff.set_num_threads(args.threads)

    frames = [a for pair in structures.bpm_dataset(args.n_clusters // 2, seed=1) for a in pair]
    tf = ff.TripletFeatures(species=[5])

    def full_rows() -> None:
        for start in range(0, len(frames), 500):
            tf.compute(frames[start : start + 500], centres=[0])

    t_full = timed(full_rows)
    t_sum = timed(lambda: tf.summed(frames, centres=[0]))
    t_all = timed(lambda: tf.summed(frames))
    tf.fit_pca(frames[:200], 32, centres=[0])
    t_pca = timed(lambda: tf.compute(frames, centres=[0]))
    n = len(frames)
    print(f"## Triplet features, {n} eight-atom B± clusters, {args.threads} threads\n")
    print("| what | time (s) | triplets/s |")
    print("|---|---|---|")
    print(f"| full rows (7344 columns), centre atom | {t_full:.2f} | {49 * n / t_full:.3g} |")
    print(f"| streamed linear sum, centre atom | {t_sum:.2f} | {49 * n / t_sum:.3g} |")
    print(f"| streamed linear sum, all 8 centres | {t_all:.2f} | - |")
    print(f"| PCA-projected rows (32), centre atom | {t_pca:.2f} | {49 * n / t_pca:.3g} |")
    print(f"\ntarget: < 60 s for the full rows -> {'met' if t_full < 60 else 'NOT met'}\n")

    # per-centre cost against M: one centre in a cloud of M neighbours inside the cutoff
    rng = np.random.default_rng(0)
    ms = [4, 8, 16, 32, 64]
    costs = []
    tf_small = ff.TripletFeatures(species=[5], cutoff=5.0, smearing=0.4)
    for m in ms:
        clusters = []
        for _ in range(8):
            u = rng.normal(size=(m, 3))
            u *= (rng.uniform(1.0, 4.5, size=m) / np.linalg.norm(u, axis=1))[:, None]
            clusters.append(ff.System(np.vstack([[0, 0, 0], u]), np.full(m + 1, 5)))
        t = timed(lambda c=clusters: tf_small.summed(c, centres=[0]), repeat=3)
        costs.append(t / len(clusters))
    slope = np.polyfit(np.log(ms[1:]), np.log(costs[1:]), 1)[0]
    print("## Per-centre cost vs neighbour count M (streamed sum, 1 centre)\n")
    print("| M | time per centre (ms) |")
    print("|---|---|")
    for m, c in zip(ms, costs, strict=True):
        print(f"| {m} | {1e3 * c:.3f} |")
    print(f"\nfitted exponent (M >= 8): {slope:.2f} (expected 2)")


if __name__ == "__main__":
    main()
