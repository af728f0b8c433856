"""Grid carbon intensity and PUE from the data shipped inside the package.

No network call is ever made here. The zone names follow three forms:

- an ISO 3166-1 alpha-2 country code (`FR`): Ember's annual figure for the country,
  a life-cycle factor (it includes upstream emissions);
- an Electricity Maps style sub-national zone (`US-CAL-CISO`): the Cloud Carbon
  Footprint factor of a cloud region mapped to that zone when there is one, else the
  country's Ember figure, saying so;
- a cloud region (`aws:eu-west-3`, `gcp:europe-west1`, `azure:westeurope`): the factor
  Cloud Carbon Footprint applies to that region, and the provider's PUE.

An unknown zone uses the world average and says so; a country is never assumed.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = [
    "UNKNOWN_ZONE",
    "WORLD_AVERAGE_G_PER_KWH",
    "Intensity",
    "ZoneChoice",
    "cloud_region_grid_zone",
    "embedded_intensity",
    "embedded_pue",
    "resolve_zone",
]

FactorType = Literal["lifecycle", "direct"]

UNKNOWN_ZONE = "unknown"

# Ember's world average for 2024, as given with the country table; the table itself has
# no world row.
WORLD_AVERAGE_G_PER_KWH = 473.0
WORLD_AVERAGE_YEAR = 2024

EMBER_SOURCE = "Ember (2026), with major processing by Our World in Data. CC BY 4.0"
CCF_SOURCE = "Cloud Carbon Footprint (commit b7a049c), Apache-2.0"

# Environment variables that name the cloud region without any network call, in order.
REGION_VARIABLES: tuple[tuple[str, str], ...] = (
    ("AWS_REGION", "aws"),
    ("AWS_DEFAULT_REGION", "aws"),
    ("GOOGLE_CLOUD_REGION", "gcp"),
    ("CLOUDSDK_COMPUTE_REGION", "gcp"),
    ("FUNCTION_REGION", "gcp"),
    ("AZURE_REGION", "azure"),
    ("AZURE_LOCATION", "azure"),
)


@dataclass(frozen=True, slots=True)
class Intensity:
    """A grid carbon intensity with its provenance.

    Attributes:
        zone: the zone asked for.
        g_per_kwh: grams CO2e per kilowatt-hour.
        source: who published the figure.
        year: the year the figure describes, when known.
        factor_type: `lifecycle` (includes upstream emissions) or `direct` (combustion).
        signal: `average` for these annual figures.
        basis: which row was used, in words ("country FR", "aws region eu-west-3").
        note: a caveat the user should see (a fallback, a substitution), or empty.
    """

    zone: str
    g_per_kwh: float
    source: str
    year: int | None
    factor_type: FactorType
    signal: str = "average"
    basis: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class ZoneChoice:
    """The zone in use and how it was found (`setting`, an environment variable, none)."""

    zone: str
    how: str


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("carbonbook.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@functools.cache
def _countries() -> dict[str, tuple[float, int]]:
    return {
        row["country_iso2"]: (float(row["g_co2e_per_kwh"]), int(row["year"]))
        for row in _rows("country_intensity_ember.csv")
    }


@functools.cache
def _cloud_factors() -> dict[tuple[str, str], tuple[float, str]]:
    """(provider, region) -> (g/kWh, Electricity Maps zone) from the default CCF set."""
    factors = {}
    for row in _rows("grid_emission_factors.csv"):
        if row["set"] != "default" or not row["t_co2e_per_kwh"]:
            continue
        grams = float(row["t_co2e_per_kwh"]) * 1e6
        factors[(row["provider"], row["region"])] = (grams, row["electricity_maps_zone"])
    return factors


@functools.cache
def _pue_table() -> dict[tuple[str, str], float]:
    return {(row["provider"], row["region"]): float(row["pue"]) for row in _rows("pue.csv")}


def resolve_zone(
    setting: str | None = None, environ: Mapping[str, str] | None = None
) -> ZoneChoice:
    """Decide the grid zone: an explicit setting, `CARBONBOOK_ZONE`, a cloud region
    variable, or `unknown`.

    Args:
        setting: a zone given by the user (a magic, a config file); wins when set.
        environ: the environment to read; `os.environ` when None.
    """
    env = os.environ if environ is None else environ
    if setting:
        return ZoneChoice(setting.strip(), "setting")
    if env.get("CARBONBOOK_ZONE"):
        return ZoneChoice(env["CARBONBOOK_ZONE"].strip(), "CARBONBOOK_ZONE")
    for variable, provider in REGION_VARIABLES:
        if env.get(variable):
            return ZoneChoice(f"{provider}:{env[variable].strip().lower()}", variable)
    return ZoneChoice(UNKNOWN_ZONE, "none")


def _world(zone: str, note: str) -> Intensity:
    return Intensity(
        zone,
        WORLD_AVERAGE_G_PER_KWH,
        EMBER_SOURCE,
        WORLD_AVERAGE_YEAR,
        "lifecycle",
        basis="world average",
        note=note,
    )


def _country(zone: str, code: str, note: str = "") -> Intensity | None:
    found = _countries().get(code)
    if found is None:
        return None
    grams, year = found
    return Intensity(
        zone, grams, EMBER_SOURCE, year, "lifecycle", basis=f"country {code}", note=note
    )


def embedded_intensity(zone: str) -> Intensity:
    """The intensity of a zone from the embedded tables (never fails, never fetches).

    Cloud Carbon Footprint's factors are generation emission rates of the kind published
    by EPA eGRID and the EEA, which count combustion only; they are recorded as `direct`.
    """
    zone = zone.strip()
    if not zone or zone.lower() == UNKNOWN_ZONE:
        return _world(
            UNKNOWN_ZONE,
            "zone unknown: using the world average; set CARBONBOOK_ZONE or %carbon zone",
        )
    provider, sep, region = zone.partition(":")
    if sep and provider.lower() in ("aws", "gcp", "azure"):
        provider = provider.lower()
        found = _cloud_factors().get((provider, region))
        if found is not None:
            return Intensity(
                zone, found[0], CCF_SOURCE, None, "direct", basis=f"{provider} region {region}"
            )
        fallback = _cloud_factors().get((provider, "Unknown"))
        note = f"{provider} region {region!r} is not in the table: using {provider}'s fallback"
        assert fallback is not None
        return Intensity(
            zone,
            fallback[0],
            CCF_SOURCE,
            None,
            "direct",
            basis=f"{provider} unknown",
            note=note,
        )
    upper = zone.upper()
    country = _country(zone, upper)
    if country is not None:
        return country
    if "-" in upper:
        for (provider, region), (grams, em_zone) in sorted(_cloud_factors().items()):
            if em_zone.upper() == upper:
                return Intensity(
                    zone,
                    grams,
                    CCF_SOURCE,
                    None,
                    "direct",
                    basis=f"{provider} region {region}, mapped to {em_zone}",
                )
        code = upper.split("-", 1)[0]
        country = _country(
            zone, code, f"no embedded figure for {zone}: using {code} as a whole"
        )
        if country is not None:
            return country
    return _world(zone, f"zone {zone!r} is not in the embedded data: using the world average")


def cloud_region_grid_zone(provider: str, region: str) -> str | None:
    """The Electricity Maps zone (such as `US-MIDA-PJM`) a cloud region draws from, if known."""
    found = _cloud_factors().get((provider.lower(), region))
    return found[1] or None if found else None


def embedded_pue(zone: str) -> float:
    """Power usage effectiveness: the provider's figure for a cloud region, else 1.0."""
    provider, sep, region = zone.partition(":")
    if not sep:
        return 1.0
    table = _pue_table()
    provider = provider.lower()
    return table.get((provider, region), table.get((provider, ""), 1.0))
