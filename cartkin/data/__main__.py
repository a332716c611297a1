"""Check a dataset from the command line: ``python -m cartkin.data FILE --model MODEL``.

Prints the dataset summary (subjects, records per observable, censoring, exclusions) and exits
0, or prints every problem of the file and exits 1. ``--scenario`` takes the model, the DVID
mapping and the units from a scenario's ``[data]`` table; ``--long OUT`` also writes the data in
cartkin's long format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cartkin.errors import CartkinError


def main(argv=None) -> int:
    """Run the check; returns the exit status (0 valid, 1 invalid data, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m cartkin.data",
        description="Validate a NONMEM-style or long-format CAR-T dataset against a model.",
    )
    parser.add_argument("file", type=Path, nargs="?", help="CSV file (default: the scenario's)")
    parser.add_argument("--model", help="model name (see `cartkin models`)")
    parser.add_argument("--scenario", type=Path, help="scenario TOML with a [data] table")
    parser.add_argument("--long", type=Path, metavar="OUT", help="also write the long format here")
    args = parser.parse_args(argv)
    if args.model is None and args.scenario is None:
        parser.error("give --model MODEL or --scenario FILE")
    from cartkin.data import read
    from cartkin.scenario import load_scenario

    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
        ds = read(args.file, model=args.model, scenario=scenario)
    except CartkinError as exc:
        print(f"cartkin: error: {exc}", file=sys.stderr)
        return 1
    print(ds.summary())
    if args.long is not None:
        ds.to_long().to_csv(args.long, index=False)
        print(f"wrote {args.long}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
