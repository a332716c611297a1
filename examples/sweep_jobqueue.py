"""Run a cartkin sweep on a Slurm or PBS cluster with dask-jobqueue.

Usage (on the login node, in the environment where cartkin is installed; the compute nodes
must see the same environment and a shared NUMBA_CACHE_DIR)::

    pip install 'cartkin[cluster]'          # adds dask-jobqueue
    python examples/sweep_jobqueue.py scenarios/sweep_dose_kidney.toml --out s.zarr \\
        --system slurm --queue compute --account myproject --jobs 4 --cores 32 \\
        --memory 64GB --walltime 01:00:00

Each batch job runs ``--cores`` single-threaded Dask worker processes (one chunk per core, one
numba thread each, so nothing is oversubscribed). The store is written by this process only, so
it needs no shared file system. Interrupt with Ctrl-C, or lose jobs to the wall time: running the
same command again computes only the missing chunks, and the result is bit-identical to an
uninterrupted run.

This script is documentation that runs; it was not run on a real cluster by the authors.
"""

from __future__ import annotations

import argparse
import os
import sys


def _cluster(args):
    try:
        import dask_jobqueue
    except ImportError:
        sys.exit("examples/sweep_jobqueue.py: needs dask-jobqueue: pip install 'cartkin[cluster]'")
    cache = os.environ.get("NUMBA_CACHE_DIR", os.path.expanduser("~/.cache/cartkin-numba"))
    prologue = [
        # one numba / BLAS thread per worker process; the kernel compiled once into a shared cache
        "export NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1",
        f"export NUMBA_CACHE_DIR={cache}",
    ]
    common = {
        "cores": args.cores,
        "processes": args.cores,
        "memory": args.memory,
        "walltime": args.walltime,
        "queue": args.queue,
        "account": args.account,
        "job_script_prologue": prologue,
    }
    if args.system == "slurm":
        return dask_jobqueue.SLURMCluster(**common)
    return dask_jobqueue.PBSCluster(**common, resource_spec=f"select=1:ncpus={args.cores}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", help="scenario TOML file with a [sweep] table")
    parser.add_argument("--out", required=True, help="result store (.zarr); rerun to resume")
    parser.add_argument("--system", choices=("slurm", "pbs"), default="slurm")
    parser.add_argument("--queue", help="partition (Slurm) or queue (PBS)")
    parser.add_argument("--account", help="project to charge")
    parser.add_argument("--jobs", type=int, default=2, help="batch jobs (nodes) to start")
    parser.add_argument("--cores", type=int, default=16, help="cores per job")
    parser.add_argument("--memory", default="32GB", help="memory per job")
    parser.add_argument("--walltime", default="01:00:00")
    parser.add_argument("--chunk-size", type=int, default=None, help="patients per chunk")
    args = parser.parse_args()

    from cartkin.sweep import SweepInterrupted, run_sweep

    cluster = _cluster(args)
    cluster.scale(jobs=args.jobs)
    print(cluster.job_script(), file=sys.stderr)
    try:
        run = run_sweep(
            args.scenario, args.out, scheduler=cluster.scheduler_address,
            chunk_size=args.chunk_size, threads=1,
        )  # fmt: skip
    except SweepInterrupted as exc:
        print(f"sweep_jobqueue: {exc}", file=sys.stderr)
        return 130
    finally:
        cluster.close()
    print(
        f"{run.n_computed} patients in {run.seconds:.0f} s ({run.patients_per_s:.0f}/s), "
        f"{run.n_failed} failed; report: cartkin report {args.out} --plot figs/",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
