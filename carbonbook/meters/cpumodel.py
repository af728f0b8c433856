"""Which CPU this is, and how many watts per logical CPU it draws, for estimates.

Where no energy counter can be read (cloud VMs, containers, machines without RAPL),
carbonbook estimates CPU power from CPU time with the linear model of Cloud Carbon
Footprint (CCF): a logical CPU (vCPU) draws `min_w` when idle and `max_w` at full load,
linearly in between. This module finds `min_w` and `max_w` for the CPU named in
/proc/cpuinfo, by the first of these steps that applies:

(a) Microarchitecture. The model name is matched against the cloud-carbon-coefficients
    table of CPU models (vendor, model -> microarchitecture), and the microarchitecture's
    CCF coefficients are used. A QEMU model name that carries a codename
    ("Intel Xeon Processor (Cascadelake)", "AMD EPYC-Rome Processor") maps the same way.
    Bounds: the lowest and highest of the CCF application value and the values the
    cloud-carbon-coefficients repository computes for each provider, widened to at least
    +-10% of the point value so that a bound is never zero-width.
(b) Family. The name says only the vendor family ("AMD EPYC", "Intel Xeon" with a model
    number neither table knows): the family's microarchitectures are combined with the
    CCF group rule (the mean, or the median when Sandy Bridge or Ivy Bridge is among
    them), and the bounds span the lowest and highest bounds of the members.
(c) Thermal design power. The model is in the TDP table but no microarchitecture is
    known: `max_w` = TDP / logical CPUs of one package (this machine's logical CPUs
    divided by its sockets), and `min_w` = `max_w` times the min/max ratio of the CCF
    average. Bounds: -50% and +50%. Inside a virtual machine the guest does not see how
    many logical CPUs the host package has, so this step is skipped there. It is tried
    before (b), because the TDP of the exact model says more than a family average.
(d) Nothing known: the CCF average (`_average` row), with bounds spanning the lowest and
    the highest coefficients of all microarchitectures.

Matching is exact on a normalised name (trademarks, "CPU", "Processor", "N-Core" and the
clock speed removed), then on the model tokens alone (vendor and brand words such as
"Xeon", "Core", "Gold" removed) when that identifies one entry; it never guesses between
similar model numbers.

Units: watts per logical CPU (`_w_per_vcpu`), watts (`_w`).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import logging
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

__all__ = [
    "CpuFacts",
    "CpuPowerModel",
    "PowerBasis",
    "detect_power_model",
    "normalise_cpu_name",
    "read_cpu_facts",
    "read_cpu_model",
    "resolve_power_model",
]

logger = logging.getLogger(__name__)

PowerBasis = Literal["microarchitecture", "family", "tdp", "average"]

# The smallest half-width of the bounds of a microarchitecture's coefficient.
_MIN_RELATIVE_BOUND = 0.10
# The half-width of the bounds of a TDP-derived coefficient.
_TDP_RELATIVE_BOUND = 0.50

_VENDOR_WORDS = {"intel": "Intel", "amd": "AMD"}
_BRAND_WORDS = {"xeon", "core", "pentium", "celeron", "platinum", "gold", "silver", "bronze"}
_XEONS = ("Sandy Bridge", "Ivy Bridge", "Haswell", "Broadwell", "Skylake", "Cascade Lake")
_EPYCS = ("AMD EPYC 1st Gen", "AMD EPYC 2nd Gen", "AMD EPYC 3rd Gen")
# (vendor, word in the name) -> family label and its microarchitectures.
_FAMILIES: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("AMD", "epyc"): ("AMD EPYC", _EPYCS),
    ("Intel", "xeon"): ("Intel Xeon", _XEONS),
}
# Codenames in QEMU CPU model names ("EPYC-Rome", "Xeon Processor (Cascadelake)").
_CODENAMES = {a.replace(" ", "").casefold(): a for a in (*_XEONS, "Coffee Lake")}
_CODENAMES |= dict(zip(("naples", "rome", "milan"), _EPYCS, strict=True))

_TRADEMARK_RE = re.compile(r"\((?:r|tm|c)\)|®|™", re.IGNORECASE)
_CLOCK_RE = re.compile(r"@.*$|\b\d+(?:\.\d+)?\s*[gm]hz\b", re.IGNORECASE)
_GRAPHICS_RE = re.compile(r"\s(?:with|w/)\s.*$", re.IGNORECASE)
_NOISE_RE = re.compile(
    r"\b(?:cpu|processor|\d+-cores?|\d+(?:st|nd|rd|th) gen(?= intel))\b", re.IGNORECASE
)
# Sandy Bridge Xeons report "E5-2670 0", first-generation Core i7 "i7 CPU 920".
_LONE_ZERO_RE = re.compile(r"(?<=\s)0(?=\s|$)")
_OLD_CORE_RE = re.compile(r"\b(i[3579])\s+(\d{3,4}[a-z]*)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CpuFacts:
    """What /proc/cpuinfo says about the machine's CPUs.

    Attributes:
        model: the "model name" of the first CPU, or None where it is missing (aarch64).
        logical_cpus: the number of "processor" entries.
        sockets: the number of distinct "physical id" values (1 when none are listed).
        virtualised: True when the CPU flags include "hypervisor" (a virtual machine).
    """

    model: str | None
    logical_cpus: int
    sockets: int
    virtualised: bool


@dataclass(frozen=True, slots=True)
class CpuPowerModel:
    """Idle and full-load power of one logical CPU, with bounds and their provenance.

    Attributes:
        cpu_model: the model name it was resolved from, as read (None when unknown).
        microarchitecture: the CCF microarchitecture used, or None.
        min_w_per_vcpu: power of an idle logical CPU, watts.
        max_w_per_vcpu: power of a fully busy logical CPU, watts.
        lower_w_per_vcpu: (idle, full-load) watts of the lower bound.
        upper_w_per_vcpu: (idle, full-load) watts of the upper bound.
        basis: which step resolved it (see the module docstring).
        explanation: one sentence for the user on how the figures were chosen.
    """

    cpu_model: str | None
    microarchitecture: str | None
    min_w_per_vcpu: float
    max_w_per_vcpu: float
    lower_w_per_vcpu: tuple[float, float]
    upper_w_per_vcpu: tuple[float, float]
    basis: PowerBasis
    explanation: str

    def w_per_vcpu(self, utilisation: float) -> tuple[float, float, float]:
        """Power of one logical CPU at a utilisation in [0, 1] (clamped).

        Returns:
            (lower, point, upper) watts per logical CPU.
        """
        u = min(max(utilisation, 0.0), 1.0)

        def at(idle_w: float, full_w: float) -> float:
            return idle_w + u * (full_w - idle_w)

        return (
            at(*self.lower_w_per_vcpu),
            at(self.min_w_per_vcpu, self.max_w_per_vcpu),
            at(*self.upper_w_per_vcpu),
        )

    @property
    def full_load_bounds_ratio(self) -> float:
        """The larger relative distance from full-load power to either bound (0.35: ±35%)."""
        lower, point, upper = self.w_per_vcpu(1.0)
        if point <= 0.0:
            return 0.0
        return max(point - lower, upper - point) / point


@dataclass(frozen=True, slots=True)
class _Coefficient:
    min_w: float
    max_w: float
    lower: tuple[float, float]
    upper: tuple[float, float]


def read_cpu_facts(cpuinfo_path: str = "/proc/cpuinfo") -> CpuFacts:
    """Read the CPU model, logical CPU count, sockets and virtualisation from cpuinfo.

    Args:
        cpuinfo_path: the file to read, in the /proc/cpuinfo format.

    Returns:
        The facts; a file that cannot be read gives no model, 1 CPU and 1 socket.
    """
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError as exc:
        logger.debug("cannot read %s: %s", cpuinfo_path, exc)
        return CpuFacts(model=None, logical_cpus=1, sockets=1, virtualised=False)

    model: str | None = None
    processors = 0
    physical_ids: set[str] = set()
    virtualised = False
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "model name" and model is None and value:
            model = value
        elif key == "physical id":
            physical_ids.add(value)
        elif key in ("flags", "Features") and "hypervisor" in value.split():
            virtualised = True
    return CpuFacts(model, max(processors, 1), max(len(physical_ids), 1), virtualised)


def read_cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """Return the "model name" of /proc/cpuinfo, or None where it has none (aarch64).

    Args:
        cpuinfo_path: the file to read, in the /proc/cpuinfo format.
    """
    return read_cpu_facts(cpuinfo_path).model


def normalise_cpu_name(name: str) -> str:
    """Reduce a CPU model name to the spelling used for matching.

    Removes trademarks, "CPU", "Processor", "N-Core", the clock speed and a trailing
    "with Radeon Graphics", and collapses white space; the result keeps its case.
    "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz" becomes "Intel Xeon Gold 6248".
    """
    text = _TRADEMARK_RE.sub(" ", name)
    text = _CLOCK_RE.sub(" ", text)
    text = _GRAPHICS_RE.sub(" ", text)
    text = _NOISE_RE.sub(" ", text)
    text = _LONE_ZERO_RE.sub(" ", text)
    text = _OLD_CORE_RE.sub(r"\1-\2", text)
    return " ".join(text.split())


def _split(name: str) -> tuple[str | None, tuple[str, ...]]:
    """The vendor of a name and its lower-case tokens without vendor words."""
    tokens = normalise_cpu_name(name).casefold().split()
    vendor = next((_VENDOR_WORDS[t] for t in tokens if t in _VENDOR_WORDS), None)
    return vendor, tuple(t for t in tokens if t not in _VENDOR_WORDS)


def _model_tokens(tokens: tuple[str, ...]) -> tuple[str, ...] | None:
    """The tokens that name the model itself, or None when too little is left to be safe."""
    core = tuple(t for t in tokens if t not in _BRAND_WORDS)
    if not any(ch.isdigit() for ch in "".join(core)) or len("".join(core)) < 3:
        return None
    return core


def _rows(filename: str) -> list[dict[str, str]]:
    """Rows of a CSV file shipped in carbonbook/data."""
    text = files("carbonbook.data").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


_Key = tuple[str | None, tuple[str, ...]]
_Index = tuple[dict[_Key, str], dict[_Key, str]]


def _build_index(entries: list[tuple[str | None, str, str]]) -> _Index:
    """Exact and model-token indexes of (vendor, name, value); ambiguous keys are left out."""
    exact: dict[_Key, set[str]] = {}
    by_tokens: dict[_Key, set[str]] = {}
    for vendor, name, value in entries:
        name_vendor, tokens = _split(name)
        vendor = vendor or name_vendor
        exact.setdefault((vendor, tokens), set()).add(value)
        core = _model_tokens(tokens)
        if core is not None:
            by_tokens.setdefault((vendor, core), set()).add(value)
    return (
        {k: next(iter(v)) for k, v in exact.items() if len(v) == 1},
        {k: next(iter(v)) for k, v in by_tokens.items() if len(v) == 1},
    )


def _lookup(index: _Index, name: str) -> str | None:
    """Find a name in an index: exact tokens first, then model tokens alone."""
    vendor, tokens = _split(name)
    exact, by_tokens = index
    if (vendor, tokens) in exact:
        return exact[(vendor, tokens)]
    core = _model_tokens(tokens)
    return by_tokens.get((vendor, core)) if core is not None else None


@functools.cache
def _microarchitecture_index() -> _Index:
    entries: list[tuple[str | None, str, str]] = []
    for row in _rows("cpu_microarchitectures.csv"):
        vendor = row["vendor"].strip()
        microarchitecture = row["microarchitecture"].strip()
        # The coefficient table prefixes the AMD generations with the vendor.
        if vendor == "AMD" and not microarchitecture.startswith("AMD "):
            microarchitecture = f"AMD {microarchitecture}"
        entries.append((vendor, row["model"], microarchitecture))
    return _build_index(entries)


@functools.cache
def _tdp_index() -> _Index:
    return _build_index([(None, row["Name"], row["TDP"]) for row in _rows("cpu_tdp_watts.csv")])


@functools.cache
def _coefficients() -> tuple[Mapping[str, _Coefficient], tuple[float, float]]:
    """CCF coefficients per microarchitecture with bounds, and the `_average` (min, max)."""
    # The aws rows are the reference; the three providers' rows agree for every
    # microarchitecture they share, so a microarchitecture aws lacks (AMD EPYC 3rd Gen)
    # is taken from the others without changing any aws value.
    order = {"aws": 0, "azure": 1, "gcp": 2}
    rows = sorted(
        _rows("cpu_power_coefficients.csv"), key=lambda r: order.get(r["provider"], 3)
    )
    points: dict[str, tuple[float, float]] = {}
    for row in rows:
        pair = (float(row["min_watts_per_vcpu"]), float(row["max_watts_per_vcpu"]))
        points.setdefault(row["microarchitecture"], pair)
    average = points.pop("_average")

    # The cloud-carbon-coefficients repository computes its own values for each provider;
    # the spread between them and the application value is the coefficient's uncertainty.
    repo: dict[tuple[str, str], list[float]] = {}
    for row in _rows("coefficients_repo_crosscheck.csv"):
        value = row["coefficients_repo_value"]
        if row["kind"] == "cpu" and row["field"].endswith("_watts_per_vcpu"):
            with contextlib.suppress(ValueError):
                repo.setdefault((row["key"], row["field"]), []).append(float(value))

    table: dict[str, _Coefficient] = {}
    for name, (min_w, max_w) in points.items():
        lows, highs = [], []
        for point, field in ((min_w, "min_watts_per_vcpu"), (max_w, "max_watts_per_vcpu")):
            values = repo.get((name, field), [])
            lows.append(min([point * (1 - _MIN_RELATIVE_BOUND), *values]))
            highs.append(max([point * (1 + _MIN_RELATIVE_BOUND), *values]))
        table[name] = _Coefficient(min_w, max_w, (lows[0], lows[1]), (highs[0], highs[1]))
    return table, average


def _make(
    cpu_model: str | None, arch: str | None, c: _Coefficient, basis: PowerBasis, why: str
) -> CpuPowerModel:
    return CpuPowerModel(cpu_model, arch, c.min_w, c.max_w, c.lower, c.upper, basis, why)


def _from_microarchitecture(cpu_model: str, microarchitecture: str, how: str) -> CpuPowerModel:
    c = _coefficients()[0][microarchitecture]
    why = (
        f"{normalise_cpu_name(cpu_model)}: {microarchitecture} ({how}), "
        f"{c.min_w:g}-{c.max_w:g} W per vCPU idle to full load (CCF), bounds from the "
        "CCF application and the cloud-carbon-coefficients repository, at least ±10%"
    )
    return _make(cpu_model, microarchitecture, c, "microarchitecture", why)


def _from_family(cpu_model: str, family: str, members: tuple[str, ...]) -> CpuPowerModel:
    coefficients = [_coefficients()[0][m] for m in members]
    # The CCF rule for a group of microarchitectures: the mean, or the median when
    # Sandy Bridge or Ivy Bridge is among them.
    median = bool({"Sandy Bridge", "Ivy Bridge"} & set(members))
    group = statistics.median if median else statistics.fmean
    c = _Coefficient(
        group([c.min_w for c in coefficients]),
        group([c.max_w for c in coefficients]),
        (min(c.lower[0] for c in coefficients), min(c.lower[1] for c in coefficients)),
        (max(c.upper[0] for c in coefficients), max(c.upper[1] for c in coefficients)),
    )
    why = (
        f"{family}: generation unknown, using the {'median' if median else 'mean'} of the "
        f"{', '.join(members)} coefficients (CCF), bounds across them"
    )
    return _make(cpu_model, None, c, "family", why)


def _from_tdp(cpu_model: str, tdp_w: float, threads_per_package: float) -> CpuPowerModel:
    average_min_w, average_max_w = _coefficients()[1]
    ratio = average_min_w / average_max_w
    max_w = tdp_w / threads_per_package
    min_w = max_w * ratio
    low, high = 1 - _TDP_RELATIVE_BOUND, 1 + _TDP_RELATIVE_BOUND
    c = _Coefficient(min_w, max_w, (min_w * low, max_w * low), (min_w * high, max_w * high))
    why = (
        f"{normalise_cpu_name(cpu_model)}: microarchitecture unknown, TDP {tdp_w:g} W "
        f"over {threads_per_package:g} logical CPUs per package = {max_w:.3g} W per vCPU "
        f"at full load, idle at the CCF average's min/max ratio ({ratio:.2f}), bounds ±50%"
    )
    return _make(cpu_model, None, c, "tdp", why)


def _average(cpu_model: str | None, reason: str) -> CpuPowerModel:
    table, (min_w, max_w) = _coefficients()
    rows = table.values()
    c = _Coefficient(
        min_w,
        max_w,
        (min(c.min_w for c in rows), min(c.max_w for c in rows)),
        (max(c.min_w for c in rows), max(c.max_w for c in rows)),
    )
    why = (
        f"{reason}: using the CCF average of {min_w:g}-{max_w:g} W per vCPU, "
        "bounds across all CCF microarchitectures"
    )
    return _make(cpu_model, None, c, "average", why)


def resolve_power_model(
    cpu_model: str | None,
    *,
    logical_cpus: int | None = None,
    sockets: int = 1,
    virtualised: bool = False,
) -> CpuPowerModel:
    """Choose the power coefficients for a CPU model name (see the module docstring).

    Args:
        cpu_model: the /proc/cpuinfo "model name", or None when unknown.
        logical_cpus: this machine's logical CPUs, needed by the TDP step (c).
        sockets: this machine's CPU packages; logical CPUs / sockets is one package's.
        virtualised: True inside a virtual machine, where step (c) is skipped because
            the guest's CPUs are not the host package's.

    Returns:
        The coefficients, their bounds and an explanation for the user.
    """
    if cpu_model is None or not normalise_cpu_name(cpu_model):
        return _average(None, "CPU model unknown")

    microarchitecture = _lookup(_microarchitecture_index(), cpu_model)
    if microarchitecture is not None and microarchitecture in _coefficients()[0]:
        return _from_microarchitecture(cpu_model, microarchitecture, "CPU model table")

    vendor, tokens = _split(cpu_model)
    for word in re.split(r"[^a-z]+", " ".join(tokens)):
        codename_arch = _CODENAMES.get(word)
        if codename_arch is not None and vendor == (
            "AMD" if "AMD" in codename_arch else "Intel"
        ):
            return _from_microarchitecture(cpu_model, codename_arch, "codename in the name")

    # The TDP table is large to index, so it is consulted only where step (c) can apply.
    use_tdp = bool(logical_cpus) and not virtualised
    if use_tdp and logical_cpus:
        tdp_w = float(_lookup(_tdp_index(), cpu_model) or "nan")
        if tdp_w > 0:
            return _from_tdp(cpu_model, tdp_w, logical_cpus / max(sockets, 1))

    for (family_vendor, word), (family, members) in _FAMILIES.items():
        if vendor == family_vendor and word in tokens:
            return _from_family(cpu_model, family, members)

    if not use_tdp and float(_lookup(_tdp_index(), cpu_model) or "nan") > 0:
        reason = (
            f"{normalise_cpu_name(cpu_model)}: TDP known but not the host's CPUs per package"
        )
    else:
        reason = f"{normalise_cpu_name(cpu_model)}: not in the CPU tables"
    return _average(cpu_model, reason)


def detect_power_model(cpuinfo_path: str = "/proc/cpuinfo") -> CpuPowerModel:
    """Read this machine's CPU from cpuinfo and resolve its power coefficients.

    Args:
        cpuinfo_path: the file to read, in the /proc/cpuinfo format.
    """
    facts = read_cpu_facts(cpuinfo_path)
    model = resolve_power_model(
        facts.model,
        logical_cpus=facts.logical_cpus,
        sockets=facts.sockets,
        virtualised=facts.virtualised,
    )
    logger.info("CPU power estimate: %s", model.explanation)
    return model
