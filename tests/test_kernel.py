"""The whole path in real Jupyter kernels: hooks, magics, ledger, interrupts, kills."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest
from jupyter_client.manager import start_new_kernel

from carbonbook.ledger import read_records
from carbonbook.meters.fake_powercap import FakePowercapTree, PowercapDriver
from carbonbook.notebook.kernelspec import this_python_kernelspec

pytestmark = pytest.mark.kernel


def kernel_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CARBONBOOK_LEDGER": str(tmp_path / "ledger.sqlite"),
            "CARBONBOOK_POWERCAP_ROOT": str(tmp_path / "no-powercap"),
            "CARBONBOOK_NVML": "off",
            "CARBONBOOK_ZONE": "FR",
            "IPYTHONDIR": str(tmp_path / "ipython"),
        }
    )
    env.update(extra)
    return env


@contextmanager
def kernel(env: dict[str, str]) -> Iterator[tuple[Any, Any]]:
    with this_python_kernelspec() as name:
        manager, client = start_new_kernel(kernel_name=name, env=env, startup_timeout=60)
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client: Any, code: str, timeout: float = 60) -> tuple[dict[str, Any], list[Any]]:
    outputs: list[Any] = []

    def keep(message: dict[str, Any]) -> None:
        if message["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append(message)

    reply = client.execute_interactive(code, output_hook=keep, timeout=timeout)
    return reply["content"], outputs


def shown(outputs: list[Any]) -> str:
    parts = []
    for message in outputs:
        content = message["content"]
        parts.append(content.get("text", "") or content.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def test_auto_mode_magic_failures_and_unload(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with kernel(kernel_env(tmp_path)) as (_, client):
        reply, outputs = run(client, "%load_ext carbonbook")
        assert reply["status"] == "ok"
        assert "metering every cell" in shown(outputs)

        run(client, "import time\nx = sum(range(200000))")
        _, slow = run(client, "time.sleep(1.1)")
        _, magic = run(client, "%%carbon --label labelled\ny = x * 2\ny")
        _, value = run(client, "_carbon.label")
        failed, _ = run(client, "1 / 0")
        run(client, "%load_ext carbonbook")
        unloaded, _ = run(client, "%unload_ext carbonbook")
        run(client, "after_unload = 1")
        _, threads = run(
            client,
            "import threading\n"
            "names = [t.name for t in threading.enumerate()]\n"
            "print([name for name in names if name.startswith('carbonbook')])\n"
            "print(len(get_ipython().events.callbacks['pre_run_cell']))",
        )

    assert "⚡" in shown(slow)
    assert "[labelled]" in shown(magic)
    assert "'labelled'" in shown(value)
    assert failed["status"] == "error"
    assert unloaded["status"] == "ok"
    assert shown(threads).split("\n")[0] == "[]"

    records = read_records(ledger)
    previews = [r.source_preview for r in records]
    assert previews[0].startswith("import time")
    assert "time.sleep(1.1)" in previews
    assert [r.kind for r in records].count("magic") == 1
    cell_previews = [r.source_preview for r in records if r.kind == "cell"]
    assert not any(p.startswith("%%carbon") for p in cell_previews)
    error = next(r for r in records if r.source_preview == "1 / 0")
    assert (error.status, error.error) == ("error", "ZeroDivisionError")
    assert "after_unload = 1" not in previews
    sleep = next(r for r in records if r.source_preview == "time.sleep(1.1)")
    assert sleep.duration_s == pytest.approx(1.1, abs=0.2)
    assert sleep.method == "estimated"
    assert sleep.energy_lower_j <= sleep.energy_j <= sleep.energy_upper_j


def test_interrupted_cell_is_recorded(tmp_path: Path) -> None:
    with kernel(kernel_env(tmp_path)) as (manager, client):
        run(client, "%load_ext carbonbook\nimport time")
        message_id = client.execute("time.sleep(30)")
        time.sleep(1.5)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == message_id
        status, _ = run(client, "'still alive'")

    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert status["status"] == "ok"
    record = next(
        r for r in read_records(tmp_path / "ledger.sqlite") if "sleep" in r.source_preview
    )
    assert (record.status, record.error) == ("error", "KeyboardInterrupt")
    assert record.duration_s == pytest.approx(1.5, abs=1.0)


def test_two_kernels_write_one_ledger(tmp_path: Path) -> None:
    env = kernel_env(tmp_path)
    cells = 40
    with kernel(env) as (_, first), kernel(env) as (_, second):
        for client in (first, second):
            run(client, "%load_ext carbonbook")
        ids = []
        for index in range(cells):
            for client in (first, second):
                ids.append(client.execute(f"value = {index} ** 2"))
        for client in (first, second):
            run(client, "'done'")

    records = read_records(tmp_path / "ledger.sqlite")
    assert len(records) == 2 * cells + 2
    assert len({r.record_id for r in records}) == len(records)
    assert len({r.session_id for r in records}) == 2


def test_sigkill_loses_at_most_the_running_cell(tmp_path: Path) -> None:
    with kernel(kernel_env(tmp_path)) as (manager, client):
        run(client, "%load_ext carbonbook")
        for index in range(5):
            run(client, f"done_{index} = sum(range({index} * 10000))")
        client.execute("import time\ntime.sleep(30)")
        time.sleep(1.0)
        os.kill(manager.provisioner.pid, signal.SIGKILL)
        time.sleep(0.5)

    previews = [r.source_preview for r in read_records(tmp_path / "ledger.sqlite")]
    assert previews == [f"done_{index} = sum(range({index} * 10000))" for index in range(5)]


def test_host_energy_matches_a_known_power(tmp_path: Path) -> None:
    tree = FakePowercapTree(tmp_path / "powercap")
    tree.add_zone("intel-rapl:0", "package-0", power_w=65.0, start_uj=123_456)
    tree.add_zone("intel-rapl:0:0", "dram", power_w=7.0, start_uj=654_321)
    env = kernel_env(tmp_path, CARBONBOOK_POWERCAP_ROOT=str(tree.root))
    with PowercapDriver(tree, step_s=0.0005), kernel(env) as (_, client):
        run(client, "%load_ext carbonbook\nimport time")
        for seconds in (0.5, 1.0, 2.0):
            run(client, f"time.sleep({seconds})")

    sleeps = [
        r for r in read_records(tmp_path / "ledger.sqlite") if "sleep(" in r.source_preview
    ]
    assert len(sleeps) == 3
    for record in sleeps:
        truth_j = 72.0 * record.duration_s
        assert abs(record.host_energy_j - truth_j) / truth_j < 0.01
        assert record.method == "measured"


def test_kernel_config_file_and_magic_precedence(tmp_path: Path) -> None:
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        "c.CarbonBook.sample_period = 0.2\nc.CarbonBook.zone = 'DE'\n"
    )
    with kernel(kernel_env(tmp_path)) as (_, client):
        run(client, "%load_ext carbonbook")
        _, period = run(
            client,
            "from carbonbook.session import shared_sampler\nprint(shared_sampler().period_s)",
        )
        run(client, "first = 1")
        run(client, "%carbon zone PL")
        run(client, "second = 1")

    assert shown(period).strip() == "0.2"
    zones = {r.source_preview: r.zone for r in read_records(tmp_path / "ledger.sqlite")}
    assert zones["first = 1"] == "DE"
    assert zones["second = 1"] == "PL"


def test_papermill_run_survives_a_broken_ledger(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext carbonbook"),
        nbformat.v4.new_code_cell("total = sum(range(1000))"),
        nbformat.v4.new_code_cell("total"),
    ]
    source = tmp_path / "broken.ipynb"
    nbformat.write(notebook, source)
    output = tmp_path / "broken.out.ipynb"
    env = kernel_env(tmp_path, CARBONBOOK_LEDGER=str(tmp_path))  # a directory
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with this_python_kernelspec() as name:
            papermill.execute_notebook(
                str(source), str(output), kernel_name=name, progress_bar=False
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)

    executed = nbformat.read(output, as_version=4)
    text = str(executed.cells[1].outputs)
    assert "could not write the ledger" in text
    assert executed.cells[2].outputs[0]["data"]["text/plain"] == "499500"


def test_cell_ids_sent_by_the_frontend_are_recorded(tmp_path: Path) -> None:
    with kernel(kernel_env(tmp_path)) as (_, client):
        run(client, "%load_ext carbonbook")
        content = {"code": "squares = [n * n for n in range(1000)]", "silent": False}
        request = client.session.msg(
            "execute_request", content, metadata={"cellId": "cell-7f3a"}
        )
        client.shell_channel.send(request)
        reply = client.get_shell_msg(timeout=30)
        run(client, "'after'")

    assert reply["content"]["status"] == "ok"
    records = read_records(tmp_path / "ledger.sqlite")
    assert records[0].cell_id == "cell-7f3a"
    assert records[1].cell_id is None
