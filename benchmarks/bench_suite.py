"""Wall time of the test suite, as ``make test`` runs it (``benchmarks/run.py suite``).

One ``pytest -q`` in a subprocess with a cold training cache (pytest's temporary folders), on as many
pytest-xdist workers as cores (whole files each, so module fixtures train once), and the slowest tests
from ``--durations``, so a person sees where the time goes.  Target: 8 minutes on an
idle 2-core machine (issue 32).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 480
SLOWEST = 5
SLOWEST_FILES = 8
PARALLEL = ["-n", "auto", "--dist", "loadfile"]  # as the Makefile's test target runs it
# --durations lines: "12.34s call     tests/test_x.py::test_name"
DURATION = re.compile(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", re.MULTILINE)


def durations(output: str) -> pd.DataFrame:
    """Every phase pytest timed (``--durations=0``): seconds, phase, test and its file."""
    rows = [(float(m[1]), m[2], m[3], m[3].split("::")[0]) for m in DURATION.finditer(output)]
    return pd.DataFrame(rows, columns=["seconds", "phase", "test", "file"])


def run() -> pd.DataFrame:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PARALLEL,
                           "--durations=0", "--durations-min=0.5"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    timed = durations(done.stdout)
    rows = [("test suite wall time (pytest -q, cold cache)", seconds, "s", f"<= {TARGET_S}"),
            (f"test suite passed ({summary})", float(done.returncode == 0), "", "1"),
            ("test time summed over the workers (phases over 0.5 s)", timed["seconds"].sum(), "s", "")]
    # A file runs on one worker (--dist loadfile): the slowest files bound the wall time from below.
    for file, total in timed.groupby("file")["seconds"].sum().nlargest(SLOWEST_FILES).items():
        rows.append((f"slow file: {file}", total, "s", ""))
    for _, row in timed.nlargest(SLOWEST, "seconds").iterrows():
        rows.append((f"slow: {row['test']} ({row['phase']})", row["seconds"], "s", ""))
    return pd.DataFrame([{"benchmark": "suite", "metric": m, "value": v, "unit": u, "target": t}
                         for m, v, u, t in rows])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
