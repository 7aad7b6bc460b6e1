"""Runs every benchmark and writes their tables into BENCHMARKS.md (between
its `results:<name>` markers; the prose around them stays), with the
machine they ran on. Raw figures go to bench/results/<name>.json.

    python -m bench.run                  # all of them (about an hour on 2 cores)
    python -m bench.run --only overhead  # some of them
    python -m bench.run --quick          # a smoke run: prints, writes nothing

Run it on a quiet machine: the figures are ratios measured side by side, but
a busy machine widens their spread.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from bench import common

# Quickest first, so a broken one shows early; overhead is most of the time.
BENCHMARKS = ("size", "memory", "plugin_scale", "tab_scale", "overhead", "user_fits")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; print the tables, write nothing")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    args = parser.parse_args(argv)
    for name in args.only:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"== {name}", file=sys.stderr, flush=True)
        result = module.run(quick=args.quick)
        table = module.markdown(result)
        print(table, flush=True)
        print(f"   ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        if args.quick:
            continue
        result.setdefault("machine", common.machine())
        common.save_result(name, result)
        common.update_section(common.BENCHMARKS_MD, name, table)
        common.update_section(common.BENCHMARKS_MD, "machine", _machine_line(result["machine"]))
    return 0


def _machine_line(machine: dict) -> str:
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory']}, GPU: {machine['gpu']}; "
        f"Python {machine['python']}, TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"TensorBoard {machine['tensorboard']}."
    )


if __name__ == "__main__":
    sys.exit(main())
