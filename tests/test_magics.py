"""The extension and its magics in an in-process IPython shell, with a real ledger."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import carbonbook
from carbonbook.ledger import read_records
from carbonbook.notebook.config import CarbonBook, resolve_settings
from carbonbook.notebook.extension import CellMeter
from carbonbook.notebook.loader import active_meter
from carbonbook.sampler import Sampler
from tests.helpers import ScriptedProbe


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("CARBONBOOK_LEDGER", str(tmp_path / "ledger.sqlite"))
    monkeypatch.setenv("CARBONBOOK_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    monkeypatch.setenv("CARBONBOOK_NVML", "off")
    monkeypatch.setenv("CARBONBOOK_ZONE", "FR")
    monkeypatch.delenv("CARBONBOOK_SHOW", raising=False)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "carbonbook")
    yield ip
    ip.run_line_magic("unload_ext", "carbonbook")


def meter_of(ip: InteractiveShell) -> CellMeter:
    meter = active_meter(ip)
    assert meter is not None
    return meter


def texts(cap: Any) -> str:
    return "\n".join(output.data.get("text/plain", "") for output in cap.outputs) + cap.stdout


def our_callbacks(ip: InteractiveShell, event: str) -> list[Any]:
    return [
        cb
        for cb in ip.events.callbacks[event]
        if isinstance(getattr(cb, "__self__", None), CellMeter)
    ]


def test_load_registers_hooks_and_magics_once(shell: InteractiveShell) -> None:
    shell.run_line_magic("load_ext", "carbonbook")
    carbonbook.load_ipython_extension(shell)

    assert len(our_callbacks(shell, "pre_run_cell")) == 1
    assert len(our_callbacks(shell, "post_run_cell")) == 1
    assert "carbon" in shell.magics_manager.magics["line"]
    assert "carbon" in shell.magics_manager.magics["cell"]


def test_every_cell_is_recorded_and_committed(shell: InteractiveShell, tmp_path: Path) -> None:
    shell.run_cell("a = sum(range(10000))", store_history=True)
    shell.run_cell("b = a * 2", store_history=True)

    meter = meter_of(shell)
    assert [r.source_preview for r in meter.records] == ["a = sum(range(10000))", "b = a * 2"]
    assert all(r.kind == "cell" and r.status == "ok" for r in meter.records)
    assert meter.records[1].execution_count == meter.records[0].execution_count + 1
    on_disk = read_records(tmp_path / "ledger.sqlite")
    assert [r.record_id for r in on_disk] == [r.record_id for r in meter.records]
    assert on_disk[0].zone == "FR"
    assert on_disk[0].intensity_g_per_kwh == pytest.approx(41, abs=5)


def test_silent_and_unstored_cells_are_not_recorded(shell: InteractiveShell) -> None:
    shell.run_cell("x = 1", silent=True)
    shell.run_cell("y = 2", store_history=False)

    assert meter_of(shell).records == []


def test_failing_cell_is_recorded_as_error(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        result = shell.run_cell("1 / 0", store_history=True)

    assert isinstance(result.error_in_exec, ZeroDivisionError)
    record = meter_of(shell).records[-1]
    assert record.status == "error"
    assert record.error == "ZeroDivisionError"
    assert "cell failed" in texts(cap)


def test_cell_magic_meters_one_cell_with_its_label(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        result = shell.run_cell("%%carbon --label fit\nx = 2\nx * 21", store_history=True)

    assert result.result == 42
    records = meter_of(shell).records
    assert len(records) == 1
    assert records[0].kind == "magic"
    assert records[0].label == "fit"
    assert shell.user_ns["_carbon"] is records[0]
    assert carbonbook.last_record() is records[0]
    assert "[fit]" in texts(cap)


def test_cell_magic_lets_exceptions_through(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%carbon\nvalue = 3\nraise KeyError(value)", store_history=True)

    assert isinstance(result.error_in_exec, KeyError)
    records = meter_of(shell).records
    assert len(records) == 1
    assert records[0].status == "error"
    assert records[0].error == "KeyError"
    assert shell.user_ns["value"] == 3


def test_cell_magic_works_with_auto_off(shell: InteractiveShell) -> None:
    shell.run_line_magic("carbon", "off")
    shell.run_cell("plain = 1", store_history=True)
    shell.run_cell("%%carbon --quiet --zone DE\nmetered = 1", store_history=True)
    shell.run_line_magic("carbon", "on")

    records = meter_of(shell).records
    assert [r.kind for r in records] == ["magic"]
    assert records[0].zone == "DE"


def test_quiet_and_show_policies(shell: InteractiveShell) -> None:
    meter = meter_of(shell)

    with capture_output() as quiet:
        shell.run_cell("%%carbon -q\nz = 1", store_history=True)
    meter.settings.show = "all"
    with capture_output() as shown:
        shell.run_cell("z = 2", store_history=True)
    meter.settings.show = "auto"
    with capture_output() as short:
        shell.run_cell("z = 3", store_history=True)
    meter.settings.show = "none"
    with capture_output() as hidden:
        shell.run_cell("1 / 0", store_history=True)

    assert "⚡" not in texts(quiet)
    assert "⚡" in texts(shown)
    assert "⚡" not in texts(short)
    assert "⚡" not in texts(hidden)
    html = [o.data.get("text/html", "") for o in shown.outputs]
    assert any("⚡" in h and "title=" in h for h in html)


def test_status_zone_summary_and_help(shell: InteractiveShell) -> None:
    shell.run_cell("s = sorted(range(100000), reverse=True)", store_history=True)
    shell.run_cell("t = 1", store_history=True)

    status = repr(shell.run_line_magic("carbon", "status"))
    zone = repr(shell.run_line_magic("carbon", "zone PL"))
    summary = shell.run_line_magic("carbon", "summary")
    helptext = repr(shell.run_line_magic("carbon", ""))

    assert "cpu: estimated by estimate" in status
    assert "this session: 2 records" in status
    assert "zone PL" in zone
    assert meter_of(shell).settings.zone == "PL"
    rows = summary.rows()
    assert rows[1][1].startswith("s = sorted")
    assert rows[-1][0] == "total"
    assert "%%carbon" in helptext
    with pytest.raises(UsageError, match="unknown command"):
        shell.run_line_magic("carbon", "bogus")


def test_export_session_records(shell: InteractiveShell, tmp_path: Path) -> None:
    shell.run_cell("u = 1", store_history=True)
    shell.run_cell("v = 2", store_history=True)

    csv_path = tmp_path / "out.csv"
    shell.run_line_magic("carbon", f"export {csv_path}")
    cc_path = tmp_path / "emissions.csv"
    shell.run_line_magic("carbon", f"export {cc_path} --format codecarbon")

    header = csv_path.read_text().splitlines()[0]
    assert "energy_j" in header
    assert len(csv_path.read_text().splitlines()) == 3
    assert cc_path.read_text().splitlines()[0].startswith("timestamp,project_name,run_id")


def test_unload_removes_hooks_magics_and_thread(shell: InteractiveShell) -> None:
    shell.run_line_magic("unload_ext", "carbonbook")

    assert our_callbacks(shell, "pre_run_cell") == []
    assert our_callbacks(shell, "post_run_cell") == []
    assert "carbon" not in shell.magics_manager.magics["line"]
    assert "carbon" not in shell.magics_manager.magics["cell"]
    assert not [t for t in threading.enumerate() if t.name == "carbonbook-sampler"]
    shell.run_line_magic("load_ext", "carbonbook")  # the fixture unloads it again


def test_reload_keeps_one_set_of_hooks_and_the_session(shell: InteractiveShell) -> None:
    session = meter_of(shell).session_id
    shell.run_line_magic("reload_ext", "carbonbook")
    shell.run_cell("w = 1", store_history=True)

    assert len(our_callbacks(shell, "pre_run_cell")) == 1
    assert meter_of(shell).session_id == session
    assert len(meter_of(shell).records) == 1


class BrokenSampler(Sampler):
    def snapshot(self):  # type: ignore[no-untyped-def]
        raise RuntimeError("sensor on fire")


def test_internal_errors_never_reach_the_cell(tmp_path: Path) -> None:
    ip = InteractiveShell.instance()
    meter = CellMeter(
        ip,
        sampler_factory=lambda period: BrokenSampler([], ScriptedProbe()),
        settings=resolve_settings(environ={"CARBONBOOK_LEDGER": str(tmp_path / "l.sqlite")}),
    )
    ip.events.register("pre_run_cell", meter.pre_run_cell)
    ip.events.register("post_run_cell", meter.post_run_cell)
    try:
        with capture_output() as cap:
            first = ip.run_cell("q = 1", store_history=True)
            second = ip.run_cell("q = 2", store_history=True)
    finally:
        ip.events.unregister("pre_run_cell", meter.pre_run_cell)
        ip.events.unregister("post_run_cell", meter.post_run_cell)

    assert first.success
    assert second.success
    assert texts(cap).count("sensor on fire") == 1
    assert "Traceback" not in cap.stderr


def test_a_ledger_that_cannot_be_written_loses_nothing(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    meter = meter_of(shell)
    meter.stop()
    meter.settings.ledger = str(tmp_path)  # a directory: not a ledger file
    meter.start()
    with capture_output() as cap:
        shell.run_cell("r = 1", store_history=True)
        shell.run_cell("r = 2", store_history=True)

    assert texts(cap).count("could not write the ledger") == 1
    assert len(meter.records) == 2

    good = tmp_path / "good.sqlite"
    meter.settings.ledger = str(good)
    shell.run_cell("r = 3", store_history=True)
    assert len(read_records(good)) == 3


def test_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config()
    config.CarbonBook.zone = "DE"
    config.CarbonBook.sample_period = 0.2
    env = {"CARBONBOOK_ZONE": "FR", "CARBONBOOK_SAMPLE_PERIOD": "0.7", "CARBONBOOK_SHOW": "all"}

    from_config = resolve_settings(CarbonBook(config=config), env)
    from_env = resolve_settings(CarbonBook(), env)
    defaults = resolve_settings(CarbonBook(), {})

    assert (from_config.zone, from_config.sample_period_s) == ("DE", 0.2)
    assert (from_env.zone, from_env.sample_period_s, from_env.show) == ("FR", 0.7, "all")
    assert (defaults.zone, defaults.sample_period_s, defaults.auto) == (None, 0.5, True)


def test_load_ext_imports_neither_polars_nor_altair(tmp_path: Path) -> None:
    code = (
        "%load_ext carbonbook\n"
        "import sys\n"
        "print('HEAVY', sorted({'polars', 'altair'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CARBONBOOK_LEDGER": str(tmp_path / "l.sqlite"),
            "CARBONBOOK_NVML": "off",
        },
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout
