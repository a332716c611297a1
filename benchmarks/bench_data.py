"""Time cartkin.data.read on the shipped synthetic cohort and on a 50x larger copy.

    python benchmarks/bench_data.py
    python benchmarks/bench_data.py --quick    # smoke run: a 2x copy, one read each

Prints the best of 3 reads for each file (the large copy has 2,000 subjects and 44,000 rows:
the 40-patient cohort with its IDs renumbered 50 times), and the per-row cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cartkin.data import example_path, read

COPIES = 50
REPEATS = 3


def _large_copy(folder: Path, copies: int) -> Path:
    lines = example_path("synthetic_cohort.csv").read_text(encoding="utf-8").splitlines()
    header = next(line for line in lines if line.startswith("ID,"))
    body = [line for line in lines if line[:1].isdigit()]
    out = [header]
    for k in range(copies):
        for line in body:
            pid, rest = line.split(",", 1)
            out.append(f"{int(pid) + 1000 * k},{rest}")
    path = folder / "large.csv"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def _best_of(path: Path, repeats: int) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ds = read(path, model="sle_cart")
        times.append(time.perf_counter() - start)
    return min(times), len(ds.observations) + len(ds.doses)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: a 2x copy, one read each")
    args = ap.parse_args(argv)
    copies, repeats = (2, 1) if args.quick else (COPIES, REPEATS)
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in (
            ("synthetic_cohort.csv", example_path("synthetic_cohort.csv")),
            (f"{copies}x copy", _large_copy(Path(tmp), copies)),
        ):
            seconds, rows = _best_of(path, repeats)
            print(f"{label:>22}: {rows:6d} rows  {seconds * 1e3:8.1f} ms  "
                  f"{seconds / rows * 1e6:6.1f} us/row")  # fmt: skip


if __name__ == "__main__":
    main()
