"""What a sweep costs beyond the batch engine: draws, contexts, store writes, Dask.

For one sweep scenario at several sizes, in fresh subprocesses (so peak memory is per run):

- ``engine``: one :func:`cartkin.sweep.population.batch_engine` call per chunk, nothing stored;
- ``sweep``: :func:`cartkin.sweep.run_sweep` into a new Zarr store (draws, engine, writes);
- ``sweep1``: the same on one numba thread (the 1 -> 2 thread scaling of ``sweep``);
- ``dask1`` / ``dask2``: the same on a 1-worker (1 numba thread) / 2-worker ``LocalCluster``
  (numba threads per worker = cores / workers = 1 here; cluster start included).

Each line reports patients/s and the peak resident memory of the process. The compiled kernel
is loaded from the numba cache in a warm-up run first (compile time is not counted).

Usage::

    python benchmarks/bench_sweep_pipeline.py [SCENARIO] [--sizes 10000,100000] [--no-dask]
        [--modes engine,sweep1,sweep,dask1,dask2]
    python benchmarks/bench_sweep_pipeline.py --quick   # smoke run: 400 patients, no Dask

Without SCENARIO a stein2019 dose x eGFR sweep is generated (the model with in-kernel metrics
at the time of writing); ``n_patients`` of the scenario is replaced to reach each size.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = """
[scenario]
name = "bench: stein2019 dose x eGFR"
model = "stein2019"
t_end_days = 365.0

[patient]
weight_kg = 40.0
height_cm = 148.0
age_years = 12.0
sex = "male"
egfr_ml_min_173m2 = 110.0

[lymphodepletion]  # the usual Flu/Cy (the class defaults)
[cart]
cells_per_kg = 3.1e6

[solver]
method = "auto"
rtol = 1e-5
atol = 1e-8

[sweep]
n_patients = 1000
seed = 1

[sweep.axes]
"cart.cells_per_kg" = [1e6, 5e6]
"patient.egfr_ml_min_173m2" = [110, 30]

[sweep.variability]
foldx = 2.4
alpha = 0.91
beta = 0.86
flu_clearance = 0.053
"""

_CHILD = r"""
import json, resource, sys, time, tempfile
from cartkin.sweep import load_sweep, run_sweep
from cartkin.sweep.population import batch_engine, draw_population
mode, path = sys.argv[1], sys.argv[2]
sweep = load_sweep(path)
chunk = min(10_000, sweep.n_patients)
if mode == "engine":
    t0 = time.perf_counter()
    for g in range(sweep.n_points):
        for start in range(0, sweep.n_patients, chunk):
            batch_engine(draw_population(sweep, g, start, min(start + chunk, sweep.n_patients)),
                         sweep.metrics)
    seconds = time.perf_counter() - t0
else:
    out = tempfile.mkdtemp() + "/s.zarr"
    workers = {"dask1": 1, "dask2": 2}.get(mode)
    run = run_sweep(sweep, out, workers=workers, threads=1 if mode in ("sweep1", "dask1") else None,
                    progress=False)
    seconds = run.seconds
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"mode": mode, "n": sweep.n_total, "seconds": seconds,
                  "patients_per_s": sweep.n_total / seconds, "peak_rss_mb": rss_mb}))
"""


def _scenario(text: str, n_total: int, directory: Path) -> Path:
    """The scenario with ``n_patients`` set so that the grid holds about ``n_total`` patients."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from cartkin.sweep import load_sweep

    path = directory / f"bench_{n_total}.toml"
    path.write_text(text)
    per_point = max(1, n_total // load_sweep(path).n_points)
    path.write_text(re.sub(r"n_patients\s*=\s*\d+", f"n_patients = {per_point}", text))
    return path


def _run(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode, str(path)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", type=Path)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument(
        "--modes",
        default="engine,sweep,dask2",
        help="comma-separated: engine, sweep, sweep1, dask1, dask2",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 400 patients, modes engine and sweep, -> OUT/quick/")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.modes, args.out = "400", "engine,sweep", args.out / "quick"
    text = args.scenario.read_text() if args.scenario else DEFAULT
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = _scenario(text, 400 if args.quick else 1000, Path(tmp))
        _run("engine", warm)  # load or compile the kernel once
        for n in (int(x) for x in args.sizes.split(",")):
            path = _scenario(text, n, Path(tmp))
            modes = [m for m in args.modes.split(",") if not (args.no_dask and "dask" in m)]
            for mode in modes:
                row = _run(mode, path)
                rows.append(row)
                print(f"{mode:7s} n={row['n']:>9,d}  {row['seconds']:7.2f} s  "
                      f"{row['patients_per_s']:9.0f} patients/s  peak RSS "
                      f"{row['peak_rss_mb']:6.0f} MB", flush=True)  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep_pipeline.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
