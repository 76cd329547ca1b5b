"""What installing portico_rx costs projects that do not use it: a trivial pytest run and
``import hypothesis``, with portico_rx's entry points (as pyproject.toml declares them)
against the same run without them.

    python benchmarks/bench_packaging.py [--rounds 15] [--quick]

A (with portico_rx's plugin) and B (``-p no:portico_rx``; for hypothesis, the same
interpreter without portico_rx's entry point, other plugins kept) alternate in one run;
each round is a fresh interpreter. Printed: the median of B and of A, the median of the
paired differences A - B (min–max) and of the paired ratios A / B (min–max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = "def test_trivial():\n    assert 1 + 1 == 2\n"


def write_entry_points(site: Path) -> None:
    """A folder that reads as an installed distribution holding pyproject's entry points."""
    info = site / "portico_rx_entry_points-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: portico_rx_entry_points\nVersion: 0.0\n"
    )
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def compare(name: str, a: Callable[[], float], b: Callable[[], float], rounds: int) -> None:
    a(), b()  # warm the file cache
    pairs = []
    for n in range(rounds):
        if n % 2:
            ta, tb = a(), b()
        else:
            tb, ta = b(), a()
        pairs.append((ta, tb))
    diffs = [ta - tb for ta, tb in pairs]
    ratios = [ta / tb for ta, tb in pairs]
    print(
        f"{name}: without {statistics.median(tb for _, tb in pairs):.3f} s, "
        f"with {statistics.median(ta for ta, _ in pairs):.3f} s; "
        f"difference {statistics.median(diffs) * 1000:+.0f} ms "
        f"({min(diffs) * 1000:+.0f}..{max(diffs) * 1000:+.0f}); "
        f"ratio {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}), "
        f"{rounds} rounds"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds (smoke run)")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        site, project = base / "site", base / "project"
        write_entry_points(site)
        project.mkdir()
        (project / "test_trivial.py").write_text(TRIVIAL)
        (project / "pytest.ini").write_text("[pytest]\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
        env.pop("PYTEST_ADDOPTS", None)
        bare = dict(env, PYTHONPATH=str(ROOT))  # the checkout, without the entry points
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        compare(
            "pytest, a trivial test",
            lambda: timed(pytest, project, env),
            lambda: timed([*pytest, "-p", "no:portico_rx"], project, env),
            rounds,
        )
        probe = [sys.executable, "-c", "import hypothesis"]
        compare(
            "import hypothesis",
            lambda: timed(probe, project, env),
            lambda: timed(probe, project, bare),
            rounds,
        )
        importing = [sys.executable, "-c", "import portico_rx"]
        compare(
            "import portico_rx (for scale) vs a bare interpreter",
            lambda: timed(importing, project, bare),
            lambda: timed([sys.executable, "-c", "pass"], project, bare),
            rounds,
        )


if __name__ == "__main__":
    main()
