"""Estimating a 10-million-row CUR 2.0 export in Parquet, beside a bare polars group-by.

Run: python bench/bench_billing.py [--rows 10000000] [--keep DIR]

The export is generated from the repository's small CUR 2.0 sample (real-looking line
items of EC2, RDS, S3, EBS, Lambda, networking and unknown usage): its rows are repeated
over more accounts and hours, in ten Parquet files. Each measurement runs in a fresh
process, so its peak resident memory is its own:

- bare: `scan_parquet` of the files, group-by of the columns an estimate needs (day,
  line item type, product code, usage type, pricing unit, region, vCPU), sums of usage
  and cost, streaming engine: the least any estimate by day, service and region must do;
- carbonbook: `carbonbook.billing.estimate(files, group_by=["day", "service", "region"])`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "billing" / "aws_cur2"
FILES = 10

BARE = """
import json, resource, sys, time
import polars as pl
start = time.perf_counter()
frame = (
    pl.scan_parquet(sys.argv[1] + "/*.parquet")
    .group_by(
        pl.col("line_item_usage_start_date").dt.truncate("1d").alias("day"),
        "line_item_line_item_type",
        "line_item_product_code",
        "line_item_usage_type",
        "pricing_unit",
        "product_region",
        "product_vcpu",
    )
    .agg(pl.col("line_item_usage_amount").sum(), pl.col("line_item_blended_cost").sum())
    .collect(engine="streaming")
)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "rows": frame.height}))
"""

OURS = """
import json, resource, sys, time
import carbonbook.billing as billing
start = time.perf_counter()
frame = billing.estimate(sys.argv[1], group_by=["day", "service", "region"])
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "peak_bytes": peak, "rows": frame.height,
                  "co2e_kg": frame["co2e_kg"].sum()}))
"""


def generate(directory: Path, rows: int) -> None:
    sample = pl.read_parquet(SAMPLE / "*.parquet")
    copies = max(1, rows // sample.height // FILES)
    for part in range(FILES):
        shift = pl.int_range(copies, eager=True).alias("_copy")
        frame = (
            sample.join(pl.DataFrame(shift), how="cross")
            .with_columns(
                (
                    pl.col("line_item_usage_account_id")
                    + "-"
                    + (pl.col("_copy") % 40).cast(pl.String)
                ),
                *(
                    pl.col(name)
                    + pl.duration(hours=(pl.col("_copy") // 40) * 48 + part * 48 * 25)
                    for name in ("line_item_usage_start_date", "line_item_usage_end_date")
                    if sample.schema[name] != pl.String
                ),
            )
            .drop("_copy")
        )
        frame.write_parquet(directory / f"part-{part:02d}.parquet", row_group_size=250_000)


def measure(code: str, directory: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", code, str(directory)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", help="generate into this folder and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(args.keep or scratch)
        directory.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        if not list(directory.glob("*.parquet")):
            generate(directory, args.rows)
        total = pl.scan_parquet(directory / "*.parquet").select(pl.len()).collect().item()
        size = sum(p.stat().st_size for p in directory.glob("*.parquet"))
        print(
            f"{total:,} line items in {FILES} Parquet files, {size / 2**20:.0f} MiB "
            f"(generated in {time.perf_counter() - began:.0f} s)"
        )
        bare = measure(BARE, directory)
        ours = measure(OURS, directory)

    print(f"{'':<44} {'seconds':>8} {'peak MiB':>9} {'rows out':>9}")
    for name, figures in (
        ("bare scan + group-by of the same columns", bare),
        ("carbonbook.billing.estimate, same grouping", ours),
    ):
        print(
            f"{name:<44} {figures['seconds']:>8.2f} {figures['peak_bytes'] / 2**20:>9.0f} "
            f"{int(figures['rows']):>9}"
        )
    ratio = ours["seconds"] / bare["seconds"]
    print(
        f"ratio {ratio:.2f}x (goal at most 2x); peak {ours['peak_bytes'] / 2**30:.2f} GB "
        f"(goal under 2 GB); CO2e {ours['co2e_kg']:.1f} kg"
    )


if __name__ == "__main__":
    main()
