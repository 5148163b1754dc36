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
PARALLEL = ["-n", "auto", "--dist", "loadfile"]  # as the Makefile's test target runs it


def run() -> pd.DataFrame:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PARALLEL,
                           f"--durations={SLOWEST}"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    rows = [("test suite wall time (pytest -q, cold cache)", seconds, "s", f"<= {TARGET_S}"),
            (f"test suite passed ({summary})", float(done.returncode == 0), "", "1")]
    # --durations lines: "12.34s call     tests/test_x.py::test_name"
    for match in re.finditer(r"^([\d.]+)s (call|setup|teardown)\s+(\S+)$", done.stdout, re.MULTILINE):
        rows.append((f"slow: {match[3]} ({match[2]})", float(match[1]), "s", ""))
    return pd.DataFrame([{"benchmark": "suite", "metric": m, "value": v, "unit": u, "target": t}
                         for m, v, u, t in rows])


if __name__ == "__main__":
    print(run().to_markdown(index=False, floatfmt=".4g"))
