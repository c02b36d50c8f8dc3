"""``python -m benchmarks``: measure the DESIGN §8 targets and print them as a table.

Every ratio compares two things measured in the same run, on the same machine, as medians over
repeated rounds, so the figures mean the same on a fast or a slow machine.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", help="run only the benchmarks whose key contains this text")
    args = parser.parse_args(argv)
    # The startup benchmark copies one plugin 200 times; its warnings are expected noise here.
    logging.disable(logging.WARNING)
    rows = runtime.run(quick=args.quick, only=args.only)
    print(runtime.format_table(rows))
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
