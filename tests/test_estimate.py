"""Tests of the CPU power model resolution and the estimate meter's arithmetic."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from carbonbook.meters.base import EnergyDelta, Interval, Meter
from carbonbook.meters.cpumodel import (
    CpuPowerModel,
    detect_power_model,
    normalise_cpu_name,
    read_cpu_facts,
    read_cpu_model,
    resolve_power_model,
)
from carbonbook.meters.estimate import EstimateMeter, ccf_memory_w_per_gb, estimate_bounds_ratio

GIB = 2**30

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
physical id\t: 0
flags\t\t: fpu vme de pse hypervisor avx2

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz
physical id\t: 1
flags\t\t: fpu vme de pse hypervisor avx2
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
CPU implementer\t: 0x41
CPU part\t: 0xd0c

processor\t: 1
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def _cascade_lake() -> CpuPowerModel:
    return resolve_power_model("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz")


# --- reading /proc/cpuinfo ---------------------------------------------------------


def test_read_cpu_model_from_x86_cpuinfo(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(X86_CPUINFO)
    assert read_cpu_model(str(path)) == "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"


def test_read_cpu_model_is_none_on_aarch64_without_model_name(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(ARM_CPUINFO)
    assert read_cpu_model(str(path)) is None


def test_read_cpu_model_is_none_when_the_file_is_missing(tmp_path: Path) -> None:
    assert read_cpu_model(str(tmp_path / "absent")) is None


def test_read_cpu_facts_counts_cpus_sockets_and_hypervisor(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(X86_CPUINFO)
    facts = read_cpu_facts(str(path))
    assert (facts.logical_cpus, facts.sockets, facts.virtualised) == (2, 2, True)

    path.write_text(ARM_CPUINFO)
    facts = read_cpu_facts(str(path))
    assert (facts.model, facts.logical_cpus, facts.sockets, facts.virtualised) == (
        None,
        2,
        1,
        False,
    )


def test_detect_power_model_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(X86_CPUINFO)
    model = detect_power_model(str(path))
    assert model.microarchitecture == "Cascade Lake"


# --- name normalisation and matching ----------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Intel Xeon Gold 6248"),
        ("AMD EPYC 7742 64-Core Processor", "AMD EPYC 7742"),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Intel Core i7-8700K"),
        ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "Intel Xeon E5-2670"),
        ("Intel(R) Core(TM) i7 CPU 920 @ 2.67GHz", "Intel Core i7-920"),
        ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", "Intel Core i7-1165G7"),
        ("AMD Ryzen 7 PRO 4750U with Radeon Graphics", "AMD Ryzen 7 PRO 4750U"),
    ],
)
def test_normalise_cpu_name(raw: str, normalised: str) -> None:
    assert normalise_cpu_name(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "microarchitecture"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "Cascade Lake"),
        ("Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz", "Cascade Lake"),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Broadwell"),
        ("Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz", "Sandy Bridge"),
        ("Intel(R) Xeon(R) CPU E5-2670 v2 @ 2.50GHz", "Ivy Bridge"),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Coffee Lake"),
        # An AWS custom part; the model table lists it as a second-generation EPYC.
        ("AMD EPYC 7R32", "AMD EPYC 2nd Gen"),
        ("AMD EPYC 7742 64-Core Processor", "AMD EPYC 2nd Gen"),
        ("AMD EPYC 7571", "AMD EPYC 1st Gen"),
        ("AMD EPYC-Rome Processor", "AMD EPYC 2nd Gen"),
        ("Intel Xeon Processor (Cascadelake)", "Cascade Lake"),
    ],
)
def test_model_names_resolve_to_their_microarchitecture(
    raw: str, microarchitecture: str
) -> None:
    model = resolve_power_model(raw)
    assert model.basis == "microarchitecture"
    assert model.microarchitecture == microarchitecture
    assert model.cpu_model == raw


def test_cascade_lake_uses_the_ccf_coefficients() -> None:
    model = _cascade_lake()
    assert (model.min_w_per_vcpu, model.max_w_per_vcpu) == (0.64, 3.97)
    assert "Cascade Lake" in model.explanation


def test_epyc_3rd_gen_takes_the_coefficients_aws_lacks_from_the_other_providers() -> None:
    model = resolve_power_model("AMD EPYC 7763 64-Core Processor")
    assert model.microarchitecture == "AMD EPYC 3rd Gen"
    assert (model.min_w_per_vcpu, model.max_w_per_vcpu) == (0.45, 2.02)


def test_a_neighbouring_model_number_is_never_matched() -> None:
    # Neither table has a Gold 6249 or an EPYC 7743: no fuzzy match may pick 6248/7742.
    assert resolve_power_model("Intel(R) Xeon(R) Gold 6249 CPU @ 2.60GHz").basis == "family"
    assert resolve_power_model("AMD EPYC 7743 64-Core Processor").basis == "family"


# --- the fallback chain -------------------------------------------------------------


def test_amd_epyc_without_a_number_is_the_family_mean() -> None:
    model = resolve_power_model("AMD EPYC")
    assert model.basis == "family"
    assert model.microarchitecture is None
    assert model.min_w_per_vcpu == pytest.approx((0.82 + 0.47 + 0.45) / 3)
    assert model.max_w_per_vcpu == pytest.approx((2.55 + 1.69 + 2.02) / 3)
    # The bounds span the members' bounds: the lowest are EPYC 3rd Gen's min and EPYC 2nd
    # Gen's max less 10%, the highest EPYC 1st Gen's min and max plus 10%.
    assert model.lower_w_per_vcpu == pytest.approx((0.45 * 0.9, 1.69 * 0.9))
    assert model.upper_w_per_vcpu == pytest.approx((0.82 * 1.1, 2.55 * 1.1))
    assert model.explanation.startswith("AMD EPYC: generation unknown, using the mean")
    assert model.full_load_bounds_ratio == pytest.approx((2.805 - 2.0866667) / 2.0866667)


def test_intel_xeon_without_a_number_is_the_ccf_group_median() -> None:
    # CCF takes the median when Sandy Bridge or Ivy Bridge is in the group.
    model = resolve_power_model("Intel(R) Xeon(R) CPU @ 2.20GHz")
    assert model.basis == "family"
    assert model.min_w_per_vcpu == pytest.approx(
        statistics.median([2.17, 3.04, 1, 0.71, 0.65, 0.64])
    )
    assert model.max_w_per_vcpu == pytest.approx((4.26 + 4.74) / 2)


def test_tdp_step_divides_by_logical_cpus_of_one_package() -> None:
    model = resolve_power_model(
        "AMD EPYC 9654 96-Core Processor", logical_cpus=384, sockets=2, virtualised=False
    )
    assert model.basis == "tdp"
    max_w = 360.0 / 192
    min_w = max_w * 0.74 / 3.5
    assert model.max_w_per_vcpu == pytest.approx(max_w)
    assert model.min_w_per_vcpu == pytest.approx(min_w)
    assert model.lower_w_per_vcpu == pytest.approx((min_w * 0.5, max_w * 0.5))
    assert model.upper_w_per_vcpu == pytest.approx((min_w * 1.5, max_w * 1.5))
    assert "TDP 360 W" in model.explanation
    assert model.full_load_bounds_ratio == pytest.approx(0.5)


def test_tdp_step_is_skipped_in_a_virtual_machine_or_without_cpu_count() -> None:
    name = "AMD EPYC 9654 96-Core Processor"
    assert resolve_power_model(name, logical_cpus=8, virtualised=True).basis == "family"
    assert resolve_power_model(name).basis == "family"
    ryzen = resolve_power_model(
        "AMD Ryzen 9 5950X 16-Core Processor", logical_cpus=8, virtualised=True
    )
    assert ryzen.basis == "average"
    desktop = resolve_power_model("AMD Ryzen 9 5950X 16-Core Processor", logical_cpus=32)
    assert desktop.basis == "tdp"
    assert desktop.max_w_per_vcpu == pytest.approx(105.0 / 32)


@pytest.mark.parametrize("raw", [None, "", "Neoverse-N1", "QEMU Virtual CPU version 2.5+"])
def test_unknown_cpus_use_the_ccf_average(raw: str | None) -> None:
    model = resolve_power_model(raw)
    assert model.basis == "average"
    assert (model.min_w_per_vcpu, model.max_w_per_vcpu) == (0.74, 3.5)
    # The lowest min (AMD EPYC 3rd Gen) and highest max (Sandy Bridge) of the table.
    assert model.lower_w_per_vcpu == (0.45, 1.69)
    assert model.upper_w_per_vcpu == (3.04, 8.58)


def test_microarchitecture_bounds_use_the_repository_values_and_at_least_ten_percent() -> None:
    haswell = resolve_power_model("Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz")
    assert haswell.microarchitecture == "Haswell"
    # The repository computes 1.90 / 6.01 W for Haswell against the application's 1 / 4.74.
    assert haswell.upper_w_per_vcpu == pytest.approx((1.9005681818181814, 6.012910353535353))
    assert haswell.lower_w_per_vcpu == pytest.approx((0.9, 4.74 * 0.9))


@pytest.mark.parametrize(
    "raw",
    [
        "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
        "AMD EPYC 7763",
        "AMD EPYC",
        "Intel(R) Xeon(R) CPU @ 2.20GHz",
        "Apple M1",
        None,
    ],
)
@pytest.mark.parametrize("utilisation", [0.0, 0.3, 1.0])
def test_bounds_contain_the_point_value(raw: str | None, utilisation: float) -> None:
    model = resolve_power_model(raw, logical_cpus=8)
    lower, point, upper = model.w_per_vcpu(utilisation)
    assert lower < point < upper
    assert lower <= 0.9 * point + 1e-12
    assert upper >= 1.1 * point - 1e-12


# --- the meter ----------------------------------------------------------------------


def test_cpu_energy_written_out_by_hand() -> None:
    meter = EstimateMeter(_cascade_lake(), cover=("cpu",))
    # 2 vCPUs, 50% busy (2 CPU-seconds of 4) for 2 s; the subject used a quarter of it.
    interval = Interval(0.0, 2.0, machine_busy_s=2.0, cpu_share=0.25, logical_cpus=2)
    delta = meter.read(interval)["cpu"]
    assert delta.host_j == pytest.approx(2 * (0.64 + 0.5 * 3.33) * 2)
    assert delta.host_j == pytest.approx(9.22)
    assert delta.attributed_j == pytest.approx(2.305)

    lower_min, lower_max = 0.64 * 0.9, 3.97 * 0.9
    upper_min, upper_max = 0.64 * 1.1, 3.97 * 1.1
    assert delta.host_lower_j == pytest.approx(
        2 * (lower_min + 0.5 * (lower_max - lower_min)) * 2
    )
    assert delta.host_upper_j == pytest.approx(
        2 * (upper_min + 0.5 * (upper_max - upper_min)) * 2
    )
    assert delta.attributed_lower_j == pytest.approx(delta.host_lower_j * 0.25)
    assert delta.attributed_upper_j == pytest.approx(delta.host_upper_j * 0.25)


def test_cpu_utilisation_is_clamped_to_full_load() -> None:
    meter = EstimateMeter(_cascade_lake(), cover=("cpu",))
    delta = meter.read(Interval(10.0, 11.0, machine_busy_s=9.0, cpu_share=1.0, logical_cpus=4))
    assert delta["cpu"].host_j == pytest.approx(4 * 3.97 * 1.0)
    assert delta["cpu"].attributed_j == delta["cpu"].host_j


def test_idle_machine_draws_the_minimum() -> None:
    meter = EstimateMeter(_cascade_lake(), cover=("cpu",))
    delta = meter.read(Interval(0.0, 0.5, machine_busy_s=0.0, cpu_share=0.0, logical_cpus=8))
    assert delta["cpu"].host_j == pytest.approx(8 * 0.64 * 0.5)
    assert delta["cpu"].attributed_j == 0.0


def test_dram_energy_written_out_by_hand() -> None:
    meter = EstimateMeter(_cascade_lake(), cover=("dram",))
    interval = Interval(0.0, 10.0, subject_rss_bytes=2 * GIB, machine_used_bytes=8 * GIB)
    delta = meter.read(interval)["dram"]
    assert delta.host_j == pytest.approx(8 * 0.392 * 10)
    assert delta.attributed_j == pytest.approx(2 * 0.392 * 10)
    assert (delta.host_lower_j, delta.host_upper_j) == pytest.approx((15.68, 47.04))
    assert (delta.attributed_lower_j, delta.attributed_upper_j) == pytest.approx((3.92, 11.76))


def test_memory_coefficient_comes_from_ccf_and_can_be_overridden() -> None:
    assert ccf_memory_w_per_gb() == pytest.approx(0.392)
    meter = EstimateMeter(_cascade_lake(), cover=("dram",), memory_w_per_gb=1.0)
    delta = meter.read(Interval(0.0, 1.0, subject_rss_bytes=GIB, machine_used_bytes=GIB))
    assert delta["dram"].host_j == pytest.approx(1.0)


def test_cover_limits_the_domains() -> None:
    both = EstimateMeter(_cascade_lake())
    assert [d.name for d in both.domains()] == ["cpu", "dram"]
    assert set(both.read(Interval(0.0, 1.0, logical_cpus=1))) == {"cpu", "dram"}

    dram_only = EstimateMeter(_cascade_lake(), cover=("dram",))
    assert [d.name for d in dram_only.domains()] == ["dram"]
    assert set(dram_only.read(Interval(0.0, 1.0, logical_cpus=1))) == {"dram"}


@pytest.mark.parametrize("cover", [(), ("gpu:0",), ("cpu", "psys")])
def test_cover_must_name_estimated_domains(cover: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="cover"):
        EstimateMeter(_cascade_lake(), cover=cover)  # type: ignore[arg-type]


def test_negative_memory_power_is_refused() -> None:
    with pytest.raises(ValueError, match="memory_w_per_gb"):
        EstimateMeter(_cascade_lake(), memory_w_per_gb=-0.1)


@pytest.mark.parametrize("end_s", [5.0, 4.0])
def test_zero_or_negative_duration_gives_zero(end_s: float) -> None:
    meter = EstimateMeter(_cascade_lake())
    interval = Interval(
        5.0, end_s, machine_busy_s=1.0, cpu_share=1.0, logical_cpus=2, machine_used_bytes=GIB
    )
    assert meter.read(interval) == {"cpu": EnergyDelta.zero(), "dram": EnergyDelta.zero()}


def test_meter_protocol_and_domain_descriptions() -> None:
    model = resolve_power_model("AMD EPYC")
    meter = EstimateMeter(model)
    assert isinstance(meter, Meter)
    assert meter.name == "estimate"
    assert meter.max_interval_s() is None
    meter.prime(0.0)
    meter.close()

    cpu, dram = meter.domains()
    assert (cpu.method, cpu.meter, cpu.additive) == ("estimated", "estimate", True)
    assert cpu.source == f"estimated from CPU time: {model.explanation}"
    assert any("±34%" in note for note in cpu.notes)
    assert (dram.method, dram.meter) == ("estimated", "estimate")
    assert "0.392 W per GB" in dram.source


def test_estimate_bounds_ratio() -> None:
    assert estimate_bounds_ratio(_cascade_lake()) == pytest.approx(0.1)
    assert estimate_bounds_ratio(resolve_power_model(None)) == pytest.approx((8.58 - 3.5) / 3.5)
    assert estimate_bounds_ratio(_cascade_lake(), "dram") == 0.5
