"""Start-up cost of the command line: `vsrpipe --help`, `vsrpipe enhance --help`, `vsrpipe models`.

Each command runs as a fresh process, interleaved with `python -c pass` (the floor) so that
both see the same machine load; the table gives medians and the difference to the floor.
Goal: ≤ 0.5 s over `python -c pass`. Run: `.venv/bin/python benchmarks/bench_cli_startup.py`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "vsrpipe --help": [str(Path(sys.executable).with_name("vsrpipe")), "--help"],
    "vsrpipe enhance --help": [str(Path(sys.executable).with_name("vsrpipe")), "enhance", "--help"],
    "vsrpipe models": [str(Path(sys.executable).with_name("vsrpipe")), "models"],
}


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9, help="runs of each command (interleaved)")
    args = ap.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for name, argv in COMMANDS.items():
        wall(argv)  # warm the file cache once
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            times[name].append(wall(argv))
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<26}{'median s':>10}{'over floor s':>14}")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"{name:<26}{m:>10.3f}{m - floor:>14.3f}")


if __name__ == "__main__":
    main()
