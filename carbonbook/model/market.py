"""Market-based Scope 2: the contractual instruments a user declares, applied to energy.

The GHG Protocol's Scope 2 guidance orders the emission factors of the market-based
method by precedence, and so does this module, for every row of the emissions frame
(energy x PUE, in the row's zone and year):

1. Energy attribute certificates (guarantees of origin, RECs) and power purchase
   agreements cover a declared share of the consumption, at the instrument's factor
   (0 g/kWh for renewable generation, unless declared otherwise).
2. The rest uses the supplier-specific factor of the zone, when declared.
3. Otherwise the residual mix of the zone and year (the grid once the certificates sold
   to others are taken out), when declared.
4. Otherwise the location-based intensity, and `market_basis` says so: the guidance
   allows it only when no residual mix exists.

Instruments come from a mapping or a TOML file:

    [supplier]            # zone = g CO2e/kWh from the supplier's disclosure
    FR = 52.0

    [[certificates]]      # a share of the consumption in a zone (and year) is covered
    zone = "DE"
    year = 2026
    share = 0.6
    g_per_kwh = 0.0
    kind = "guarantee of origin"

    [residual_mix]        # "zone:year" = g CO2e/kWh
    "DE:2026" = 640.0
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carbonbook.errors import CarbonbookError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Certificate", "Instruments", "InstrumentsError"]


class InstrumentsError(CarbonbookError):
    """The declared instruments are malformed (the message names the entry)."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate or PPA covering a share of the consumption in a zone.

    Attributes:
        zone: the grid zone.
        share: the covered share of the consumption, in [0, 1].
        g_per_kwh: the instrument's emission factor.
        year: the year it covers; None for every year.
        kind: what it is, in words (kept in `market_basis`).
    """

    zone: str
    share: float
    g_per_kwh: float = 0.0
    year: int | None = None
    kind: str = "certificate"


@dataclass(frozen=True, slots=True)
class Instruments:
    """The contractual instruments of an organisation, for market-based Scope 2."""

    supplier: Mapping[str, float] = field(default_factory=dict)
    certificates: Sequence[Certificate] = ()
    residual_mix: Mapping[tuple[str, int], float] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Instruments:
        """Instruments from a mapping shaped like the TOML file (see the module).

        Raises:
            InstrumentsError: an entry is missing a field or holds a bad value.
        """
        try:
            supplier = {str(k): float(v) for k, v in dict(data.get("supplier", {})).items()}
            certificates = tuple(
                Certificate(
                    zone=str(entry["zone"]),
                    share=float(entry["share"]),
                    g_per_kwh=float(entry.get("g_per_kwh", 0.0)),
                    year=int(entry["year"]) if entry.get("year") is not None else None,
                    kind=str(entry.get("kind", "certificate")),
                )
                for entry in data.get("certificates", [])
            )
            residual = {}
            for key, value in dict(data.get("residual_mix", {})).items():
                zone, _, year = str(key).rpartition(":")
                residual[(zone, int(year))] = float(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise InstrumentsError(
                f"contractual instruments: {exc!r} is missing or malformed; see "
                "carbonbook.model.market for the expected fields"
            ) from exc
        instruments = cls(supplier, certificates, residual)
        instruments.validate()
        return instruments

    @classmethod
    def from_toml(cls, path: str | Path) -> Instruments:
        """Instruments from a TOML file.

        Raises:
            InstrumentsError: the file cannot be read or parsed, or an entry is bad.
        """
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InstrumentsError(f"cannot read the instruments file {path}: {exc}") from exc
        return cls.from_mapping(data)

    def validate(self) -> None:
        """Check shares and factors.

        Raises:
            InstrumentsError: a share is outside [0, 1], shares of one zone and year add
                up to more than 1, or a factor is negative.
        """
        totals: dict[tuple[str, int | None], float] = {}
        for certificate in self.certificates:
            if not 0.0 <= certificate.share <= 1.0 or certificate.g_per_kwh < 0:
                raise InstrumentsError(
                    f"certificate for {certificate.zone}: share must be in [0, 1] and the "
                    f"factor not negative (got {certificate.share}, {certificate.g_per_kwh})"
                )
            key = (certificate.zone, certificate.year)
            totals[key] = totals.get(key, 0.0) + certificate.share
            if totals[key] > 1.0 + 1e-9:
                raise InstrumentsError(
                    f"certificates for {certificate.zone} {certificate.year or ''} cover more "
                    "than all of the consumption"
                )
        for name, value in (*self.supplier.items(), *self.residual_mix.items()):
            if value < 0:
                raise InstrumentsError(f"{name}: an emission factor cannot be negative")

    def _coverage(self) -> pl.DataFrame:
        import polars as pl

        rows = [
            (c.zone, c.year, c.share, c.share * c.g_per_kwh, c.kind) for c in self.certificates
        ]
        frame = pl.DataFrame(
            rows,
            schema={
                "zone": pl.String,
                "year": pl.Int32,
                "share": pl.Float64,
                "weighted": pl.Float64,
                "kind": pl.String,
            },
            orient="row",
        )
        return frame

    def apply(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add `co2e_market_kg` and `market_basis` to an emissions frame."""
        import polars as pl

        rows = frame.with_row_index("_market_row").with_columns(
            pl.col("start").dt.year().cast(pl.Int32).alias("_year")
        )
        coverage = self._coverage()
        for_year = coverage.filter(pl.col("year").is_not_null())
        any_year = coverage.filter(pl.col("year").is_null()).drop("year")
        covered = (
            pl.concat(
                [
                    rows.select("_market_row", "zone", "_year").join(
                        for_year, left_on=["zone", "_year"], right_on=["zone", "year"]
                    ),
                    rows.select("_market_row", "zone", "_year").join(any_year, on="zone"),
                ],
                how="diagonal_relaxed",
            )
            .group_by("_market_row")
            .agg(
                pl.col("share").sum().clip(0.0, 1.0).alias("_share"),
                pl.col("weighted").sum().alias("_weighted"),
                pl.col("kind").unique().sort().str.join(", ").alias("_kinds"),
            )
        )
        supplier = pl.DataFrame(
            {"zone": list(self.supplier), "_supplier": list(self.supplier.values())},
            schema={"zone": pl.String, "_supplier": pl.Float64},
        )
        residual = pl.DataFrame(
            {
                "zone": [zone for zone, _ in self.residual_mix],
                "_year": [year for _, year in self.residual_mix],
                "_residual": list(self.residual_mix.values()),
            },
            schema={"zone": pl.String, "_year": pl.Int32, "_residual": pl.Float64},
        )
        joined = (
            rows.join(covered, on="_market_row", how="left")
            .join(supplier, on="zone", how="left")
            .join(residual, on=["zone", "_year"], how="left")
            .with_columns(pl.col("_share").fill_null(0.0), pl.col("_weighted").fill_null(0.0))
        )
        rest_factor = pl.coalesce("_supplier", "_residual", "intensity_g_per_kwh")
        rest_basis = (
            pl.when(pl.col("_supplier").is_not_null())
            .then(pl.lit("supplier-specific factor"))
            .when(pl.col("_residual").is_not_null())
            .then(pl.lit("residual mix"))
            .otherwise(pl.lit("no residual mix declared: location-based intensity"))
        )
        basis = (
            pl.when(pl.col("_share") > 0)
            .then(
                pl.format("{} for {}%, ", pl.col("_kinds"), (pl.col("_share") * 100).round(1))
                + rest_basis
                + pl.lit(" for the rest")
            )
            .otherwise(rest_basis)
        )
        grams_per_kwh = pl.col("_weighted") + (1.0 - pl.col("_share")) * rest_factor
        return joined.with_columns(
            (pl.col("energy_kwh") * pl.col("pue") * grams_per_kwh / 1000.0).alias(
                "co2e_market_kg"
            ),
            basis.alias("market_basis"),
        ).drop(
            "_market_row", "_year", "_share", "_weighted", "_kinds", "_supplier", "_residual"
        )
