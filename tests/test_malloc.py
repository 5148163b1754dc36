"""glibc keeps freed memory for reuse once eenas asks it to (eenas.malloc): large tensors stop faulting in anew."""

import subprocess
import sys

import pytest

from eenas.malloc import keep_freed_memory

# A fresh process allocates and frees a 64 MiB tensor 50 times and prints its minor page faults.
CHURN = """
import resource, sys, torch
from eenas.malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    torch.ones(16 << 20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not keep_freed_memory(), reason="no glibc mallopt here")
def test_freed_large_tensors_are_reused_instead_of_faulted_in_again():
    # 64 MiB is 16,384 pages: by default each of the 50 tensors faults them all in again (~820k faults); kept,
    # only the first few do (~65k).
    default, kept = _faults("default"), _faults("keep")
    assert default > 500_000
    assert kept < default / 5


def test_it_is_applied_once_and_answers_the_same():
    assert keep_freed_memory() is keep_freed_memory()
