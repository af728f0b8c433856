"""The command line and the import hygiene of the metering layers, in fresh interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import carbonbook
from carbonbook.meters.fake_powercap import FakePowercapTree


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carbonbook.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CARBONBOOK_NVML": "off", **(env or {})},
        check=False,
    )


def test_doctor_without_counters_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli(
        "doctor",
        "--reading-seconds",
        "0.05",
        env={"CARBONBOOK_POWERCAP_ROOT": str(tmp_path / "none")},
    )

    assert result.returncode == 0, result.stderr
    assert "RAPL: not available" in result.stdout
    assert "CARBONBOOK_POWERCAP_ROOT" in result.stdout
    assert "Estimates for: cpu, dram" in result.stdout
    assert "Measured process tree" in result.stdout
    assert "estimated" in result.stdout
    assert "Traceback" not in result.stderr


def test_doctor_reads_a_powercap_tree(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path)
    tree.add_zone("intel-rapl:0", "package-0", power_w=30.0, start_uj=5)
    tree.add_zone("intel-rapl:0:0", "dram", power_w=3.0, start_uj=6)

    result = run_cli(
        "doctor",
        "--reading-seconds",
        "0.05",
        env={"CARBONBOOK_POWERCAP_ROOT": str(tmp_path), "CARBONBOOK_ZONE": "FR"},
    )

    assert result.returncode == 0, result.stderr
    assert "RAPL: measuring from" in result.stdout
    assert "intel-rapl:0:0" in result.stdout
    assert "Estimates: not needed" in result.stdout
    assert "FR" in result.stdout


def test_help_exits_cleanly() -> None:
    result = run_cli()

    assert result.returncode == 0
    assert "doctor" in result.stdout


def test_track_loads_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys, carbonbook\n"
        "with carbonbook.track('x') as run:\n"
        "    sum(range(100000))\n"
        "assert run.done and run.energy_j >= 0, run\n"
        "heavy = {'polars', 'altair', 'IPython', 'requests', 'papermill', 'ipywidgets'}\n"
        "print(sorted(heavy & {name.split('.')[0] for name in sys.modules}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_names() -> None:
    assert set(carbonbook.__all__) == {
        "CarbonbookError",
        "CarbonbookWarning",
        "Measurement",
        "MeterError",
        "MeterUnavailableError",
        "NvmlError",
        "RaplPermissionError",
        "__version__",
        "emissions",
        "intensity",
        "last_record",
        "load_ipython_extension",
        "read_ledger",
        "shifting",
        "track",
        "unload_ipython_extension",
    }


def test_meters_import_only_the_standard_library_psutil_and_pynvml() -> None:
    allowed = set(sys.stdlib_module_names) | {"psutil", "pynvml", "carbonbook", "_cffi_backend"}
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import carbonbook.meters.rapl, carbonbook.meters.nvidia, carbonbook.meters.estimate\n"
        "import carbonbook.meters.process, carbonbook.sampler, carbonbook.meters.fake_nvml\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    assert imported - allowed == set()
