"""The emissions model: splitting across periods, CO2e, market-based instruments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonbook.model.emissions import emissions_frame, split_across_periods
from carbonbook.model.market import Certificate, Instruments, InstrumentsError
from carbonbook.model.schema import EMISSIONS_COLUMNS, emissions_schema

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WHEN = pl.Datetime("us", "UTC")


def usage(
    rows: list[tuple[str, str, datetime, datetime, float]], pue: float = 1.0
) -> pl.DataFrame:
    schema = emissions_schema()
    frame = pl.DataFrame(
        rows, schema=["record_id", "zone", "start", "end", "energy_kwh"], orient="row"
    ).with_columns(pl.col("start", "end").cast(WHEN))
    return frame.with_columns(
        pl.col("energy_kwh").alias("energy_lower_kwh"),
        (pl.col("energy_kwh") * 1.5).alias("energy_upper_kwh"),
        pl.lit(pue).alias("pue"),
        pl.lit("notebook").alias("source"),
        pl.lit("measured").alias("method"),
        pl.lit("it").alias("energy_kind"),
        *(
            pl.lit(None, schema[name]).alias(name)
            for name in (
                "notebook",
                "label",
                "execution_count",
                "provider",
                "account",
                "service",
                "region",
                "usage_kind",
            )
        ),
    )


def hourly(zone: str, grams: list[float], start: datetime = T0) -> pl.DataFrame:
    starts = [start + timedelta(hours=h) for h in range(len(grams))]
    return pl.DataFrame(
        {
            "zone": [zone] * len(grams),
            "intensity_start": starts,
            "intensity_end": [s + timedelta(hours=1) for s in starts],
            "intensity_g_per_kwh": grams,
            "intensity_provider": ["test"] * len(grams),
            "intensity_zone": [zone] * len(grams),
            "factor_type": ["direct"] * len(grams),
            "signal": ["average"] * len(grams),
            "intensity_estimated": [False] * len(grams),
            "intensity_note": [""] * len(grams),
        }
    ).with_columns(pl.col("intensity_start", "intensity_end").cast(WHEN))


def test_a_cell_across_an_hour_boundary_by_hand() -> None:
    # 10:45 to 11:15, 0.002 kWh; 100 g/kWh until 11:00 and 300 g/kWh after, PUE 1.2.
    # Each half: 0.001 kWh. CO2e = 0.001 x 1.2 x 100 + 0.001 x 1.2 x 300 = 0.48 g.
    cell = usage(
        [
            (
                "c1",
                "FR",
                T0 + timedelta(hours=10, minutes=45),
                T0 + timedelta(hours=11, minutes=15),
                0.002,
            )
        ],
        pue=1.2,
    )
    series = hourly("FR", [50.0] * 10 + [100.0, 300.0, 50.0])

    frame = emissions_frame(cell, series)

    assert frame.columns == list(EMISSIONS_COLUMNS)
    assert frame["energy_kwh"].to_list() == pytest.approx([0.001, 0.001])
    assert frame["intensity_g_per_kwh"].to_list() == [100.0, 300.0]
    assert frame["co2e_location_kg"].sum() == pytest.approx(0.48e-3)
    assert frame["co2e_location_upper_kg"].sum() == pytest.approx(0.72e-3)
    assert frame["start"][1] == T0 + timedelta(hours=11)
    assert frame["co2e_market_kg"].sum() == pytest.approx(frame["co2e_location_kg"].sum())


def test_uncovered_time_keeps_its_energy_with_the_embedded_figure() -> None:
    cell = usage(
        [
            (
                "c1",
                "FR",
                T0 + timedelta(hours=1, minutes=30),
                T0 + timedelta(hours=2, minutes=30),
                1.0,
            )
        ]
    )
    series = hourly("FR", [10.0, 20.0])  # covers 00:00 to 02:00 only

    frame = emissions_frame(cell, series)

    assert frame["energy_kwh"].sum() == pytest.approx(1.0)
    embedded = frame.filter(pl.col("intensity_provider") == "embedded")
    assert embedded["energy_kwh"].to_list() == pytest.approx([0.5])
    assert "embedded annual figure" in embedded["intensity_note"][0]


def test_without_a_series_every_zone_uses_its_embedded_figure() -> None:
    frame = emissions_frame(usage([("a", "FR", T0, T0 + timedelta(minutes=1), 1.0)]))

    assert frame["intensity_provider"].to_list() == ["embedded"]
    assert frame["co2e_location_kg"][0] == pytest.approx(frame["intensity_g_per_kwh"][0] / 1000)


durations = st.integers(min_value=0, max_value=6 * 3600)
offsets = st.integers(min_value=0, max_value=30 * 3600)
energies = st.floats(min_value=0.0, max_value=1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(offsets, durations, energies), min_size=1, max_size=20),
    st.lists(st.floats(min_value=0.0, max_value=900.0), min_size=1, max_size=36),
)
def test_splitting_conserves_energy(
    cells: list[tuple[int, int, float]], grams: list[float]
) -> None:
    rows = [
        (f"r{i}", "FR", T0 + timedelta(seconds=o), T0 + timedelta(seconds=o + d), e)
        for i, (o, d, e) in enumerate(cells)
    ]
    pieces = split_across_periods(usage(rows), hourly("FR", grams))

    totals = dict(pieces.group_by("record_id").agg(pl.col("energy_kwh").sum()).iter_rows())
    for record_id, _, _, _, energy in rows:
        assert totals[record_id] == pytest.approx(energy, rel=1e-9, abs=1e-12)
    assert (pieces["end"] >= pieces["start"]).all()


@settings(max_examples=40, deadline=None)
@given(
    offsets,
    durations,
    energies,
    st.floats(min_value=0.0, max_value=1e3),
    st.lists(st.floats(min_value=0.0, max_value=900.0), min_size=1, max_size=36),
)
def test_co2e_is_linear_in_energy(
    offset: int, duration: int, energy: float, scale: float, grams: list[float]
) -> None:
    start = T0 + timedelta(seconds=offset)
    end = start + timedelta(seconds=duration)
    series = hourly("FR", grams)
    base = emissions_frame(usage([("a", "FR", start, end, energy)]), series)
    scaled = emissions_frame(usage([("a", "FR", start, end, energy * scale)]), series)

    assert scaled["co2e_location_kg"].sum() == pytest.approx(
        base["co2e_location_kg"].sum() * scale, rel=1e-9, abs=1e-15
    )


def test_market_based_follows_the_precedence() -> None:
    rows = [
        ("de", "DE", T0, T0 + timedelta(minutes=30), 1.0),
        ("fr", "FR", T0, T0 + timedelta(minutes=30), 1.0),
        ("pl", "PL", T0, T0 + timedelta(minutes=30), 1.0),
        ("es", "ES", T0, T0 + timedelta(minutes=30), 1.0),
    ]
    series = pl.concat([hourly(zone, [400.0]) for zone in ("DE", "FR", "PL", "ES")])
    instruments = Instruments.from_mapping(
        {
            "supplier": {"FR": 52.0},
            "certificates": [
                {"zone": "DE", "year": 2026, "share": 0.6, "kind": "guarantee of origin"}
            ],
            "residual_mix": {"DE:2026": 640.0, "PL:2026": 700.0},
        }
    )

    frame = emissions_frame(usage(rows, pue=1.0), series, market=instruments)
    market = dict(zip(frame["record_id"], frame["co2e_market_kg"], strict=True))
    basis = dict(zip(frame["record_id"], frame["market_basis"], strict=True))

    # DE: 60% at 0 g, 40% at the residual 640 g -> 256 g; FR: supplier 52 g;
    # PL: residual 700 g; ES: nothing declared -> location-based 400 g.
    assert market["de"] == pytest.approx(0.256)
    assert market["fr"] == pytest.approx(0.052)
    assert market["pl"] == pytest.approx(0.700)
    assert market["es"] == pytest.approx(0.400)
    assert "guarantee of origin for 60.0%" in basis["de"]
    assert basis["es"].startswith("no residual mix declared")


def test_bad_instruments_say_what_is_wrong() -> None:
    with pytest.raises(InstrumentsError, match="share"):
        Instruments(certificates=(Certificate("DE", 1.2),)).validate()
    with pytest.raises(InstrumentsError, match="more than all"):
        Instruments(certificates=(Certificate("DE", 0.7), Certificate("DE", 0.6))).validate()
    with pytest.raises(InstrumentsError, match="missing or malformed"):
        Instruments.from_mapping({"certificates": [{"zone": "DE"}]})


def test_instruments_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "instruments.toml"
    path.write_text(
        '[supplier]\nFR = 52.0\n\n[[certificates]]\nzone = "DE"\nshare = 0.5\n\n'
        '[residual_mix]\n"DE:2026" = 640.0\n'
    )
    instruments = Instruments.from_toml(path)

    assert instruments.supplier == {"FR": 52.0}
    assert instruments.certificates[0].year is None
    assert instruments.residual_mix[("DE", 2026)] == 640.0
    with pytest.raises(InstrumentsError, match="cannot read"):
        Instruments.from_toml(path.with_name("missing.toml"))


def test_time_shift_ranks_start_times_by_hand() -> None:
    from carbonbook.model.shifting import time_shift

    forecast = hourly("FR", [300.0, 280.0, 250.0, 120.0, 100.0, 90.0, 200.0, 310.0])
    now = T0 + timedelta(minutes=30)

    table = time_shift(0.1, timedelta(hours=2), forecast, now=now, best=2)

    # Now: half an hour at 300, an hour at 280, half an hour at 250 -> 277.5 g/kWh.
    assert table["advice"][0] == "run now"
    assert table["intensity_g_per_kwh"][0] == pytest.approx(277.5)
    # 04:00-06:00 averages (100 + 90) / 2 = 95 g/kWh: -66% against now.
    assert table["start"][1] == T0 + timedelta(hours=4)
    assert table["intensity_g_per_kwh"][1] == pytest.approx(95.0)
    assert table["advice"][1] == "run at 04:00 UTC: -66%"
    assert table["co2e_kg"][1] == pytest.approx(0.1 * 95.0 / 1000)
    assert table.height == 3


def test_place_shift_compares_zones_on_the_embedded_figures() -> None:
    from carbonbook.model.shifting import place_shift

    table = place_shift(1.0, "DE", ["FR", "PL"])

    assert table["zone"].to_list() == ["FR", "DE", "PL"]
    de = table.filter(pl.col("zone") == "DE")
    assert de["change_pct"][0] == 0.0
    assert table.filter(pl.col("zone") == "FR")["change_pct"][0] < -80
