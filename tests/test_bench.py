"""The verification scripts in bench/ run here in small sizes: the stress check must pass, the scale benchmark must complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOCKWATCH")}


@pytest.mark.stress
@pytest.mark.timeout(150)
def test_stress_for_five_seconds_harms_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "stress.py"), "--seconds", "5", "--threads", "24"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=140,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RESULT: OK" in result.stdout


@pytest.mark.timeout(120)
def test_scale_benchmark_completes_in_small_sizes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "scale.py"), "--accounts", "50,100", "--acquisitions", "2000", "--step", "1000",
         "--sites", "500", "--budget", "60"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ("| 50 accounts, plain | 2,000 |", "| 100 accounts, lockwatch | 2,000 |", "| lockwatch | 500 |"):
        assert row in result.stdout, result.stdout
