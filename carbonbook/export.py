"""Exports of ledger records: CSV, Parquet, and CodeCarbon's `emissions.csv` layout.

`records_to_frame` turns records into the frame `read_ledger` returns. In it, each
additive domain gets a column `energy_<domain>_j` with the attributed joules
(`domain_column`): the name is lower-cased and every run of characters other than letters
and digits becomes `_` (`gpu:0` -> `energy_gpu_0_j`, `cpu` -> `energy_cpu_j`); domains
whose names map to the same column are added together.

The `codecarbon` format writes one row per record with exactly the columns of CodeCarbon's
`emissions.csv`, in its order, so CodeCarbon's tools can read the file:

- `timestamp`: `ended_at`, ISO 8601 in UTC with its offset (CodeCarbon writes local time
  without one); `project_name`: the notebook's file name without its suffix, else
  `carbonbook`; `run_id`: `session_id`; `experiment_id`: empty (carbonbook has no
  experiments; the `csv` format keeps `record_id`).
- `duration`: seconds; `emissions`: `co2e_g` in kg CO2e; `emissions_rate`: kg per second.
- Energies in kWh and average powers in W over the record, from the attributed figures of
  the additive domains, multiplied by the PUE as CodeCarbon does (so that `emissions` is
  `energy_consumed` times the intensity): `cpu_*` from `cpu`, or from `psys` when the
  platform counter is the host figure (it then covers memory and more);
  `gpu_*` from every `gpu:N`; `ram_*` from `dram`; `energy_consumed` from `energy_j`, which
  also counts any other additive domain.
- `country_iso_code`: the ISO 3166 alpha-3 code CodeCarbon uses, from the zone's country
  (`FR` -> `FRA`, `US-CAL-CISO` -> `USA`, and a cloud region's country from the embedded
  region table); `cloud_provider` and `cloud_region` from a zone such as `aws:eu-west-3`,
  with `on_cloud` `Y`; `pue` as recorded; `tracking_mode` `process` (carbonbook attributes
  energy to the kernel's process tree).
- Left empty, because the ledger does not know them: `water_consumed`, `country_name`,
  `region`, `os`, `python_version`, `codecarbon_version`, the CPU, GPU and RAM hardware
  columns, the coordinates, the utilisation columns and `wue`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from carbonbook.ledger import LedgerError, encode_domains
from carbonbook.records import CellRecord

if TYPE_CHECKING:
    import polars

__all__ = [
    "CODECARBON_COLUMNS",
    "ExportError",
    "ExportFormat",
    "domain_column",
    "export_records",
    "records_to_frame",
]

logger = logging.getLogger(__name__)

ExportFormat = Literal["csv", "parquet", "codecarbon"]

JOULES_PER_KWH = 3.6e6

# The fields of CodeCarbon's EmissionsData, in order, as of CodeCarbon 3.3.2.
CODECARBON_COLUMNS: tuple[str, ...] = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip
_TEXT_COLUMNS = frozenset(
    {
        "timestamp", "project_name", "run_id", "experiment_id", "country_name",
        "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
        "python_version", "codecarbon_version", "cpu_model", "gpu_model", "tracking_mode",
        "on_cloud",
    }
)  # fmt: skip

# ISO 3166-1 alpha-2 and alpha-3 codes, run together: "FRFRA" is France.
_ISO_ALPHA3 = (
    "ADAND AEARE AFAFG AGATG AIAIA ALALB AMARM AOAGO AQATA ARARG ASASM ATAUT AUAUS AWABW "
    "AXALA AZAZE BABIH BBBRB BDBGD BEBEL BFBFA BGBGR BHBHR BIBDI BJBEN BLBLM BMBMU BNBRN "
    "BOBOL BQBES BRBRA BSBHS BTBTN BVBVT BWBWA BYBLR BZBLZ CACAN CCCCK CDCOD CFCAF CGCOG "
    "CHCHE CICIV CKCOK CLCHL CMCMR CNCHN COCOL CRCRI CUCUB CVCPV CWCUW CXCXR CYCYP CZCZE "
    "DEDEU DJDJI DKDNK DMDMA DODOM DZDZA ECECU EEEST EGEGY EHESH ERERI ESESP ETETH FIFIN "
    "FJFJI FKFLK FMFSM FOFRO FRFRA GAGAB GBGBR GDGRD GEGEO GFGUF GGGGY GHGHA GIGIB GLGRL "
    "GMGMB GNGIN GPGLP GQGNQ GRGRC GSSGS GTGTM GUGUM GWGNB GYGUY HKHKG HMHMD HNHND HRHRV "
    "HTHTI HUHUN IDIDN IEIRL ILISR IMIMN ININD IOIOT IQIRQ IRIRN ISISL ITITA JEJEY JMJAM "
    "JOJOR JPJPN KEKEN KGKGZ KHKHM KIKIR KMCOM KNKNA KPPRK KRKOR KWKWT KYCYM KZKAZ LALAO "
    "LBLBN LCLCA LILIE LKLKA LRLBR LSLSO LTLTU LULUX LVLVA LYLBY MAMAR MCMCO MDMDA MEMNE "
    "MFMAF MGMDG MHMHL MKMKD MLMLI MMMMR MNMNG MOMAC MPMNP MQMTQ MRMRT MSMSR MTMLT MUMUS "
    "MVMDV MWMWI MXMEX MYMYS MZMOZ NANAM NCNCL NENER NFNFK NGNGA NINIC NLNLD NONOR NPNPL "
    "NRNRU NUNIU NZNZL OMOMN PAPAN PEPER PFPYF PGPNG PHPHL PKPAK PLPOL PMSPM PNPCN PRPRI "
    "PSPSE PTPRT PWPLW PYPRY QAQAT REREU ROROU RSSRB RURUS RWRWA SASAU SBSLB SCSYC SDSDN "
    "SESWE SGSGP SHSHN SISVN SJSJM SKSVK SLSLE SMSMR SNSEN SOSOM SRSUR SSSSD STSTP SVSLV "
    "SXSXM SYSYR SZSWZ TCTCA TDTCD TFATF TGTGO THTHA TJTJK TKTKL TLTLS TMTKM TNTUN TOTON "
    "TRTUR TTTTO TVTUV TWTWN TZTZA UAUKR UGUGA UMUMI USUSA UYURY UZUZB VAVAT VCVCT VEVEN "
    "VGVGB VIVIR VNVNM VUVUT WFWLF WSWSM YEYEM YTMYT ZAZAF ZMZMB ZWZWE "
)

_FIELDS = tuple(f.name for f in dataclasses.fields(CellRecord) if f.name != "domains")
_TYPES = {f.name: str(f.type) for f in dataclasses.fields(CellRecord)}
_SUFFIXES: dict[str, ExportFormat] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class ExportError(LedgerError):
    """An export could not be written."""


def domain_column(domain: str) -> str:
    """The column of a domain's attributed joules: `gpu:0` -> `energy_gpu_0_j`."""
    return f"energy_{re.sub(r'[^0-9a-z]+', '_', domain.lower()).strip('_')}_j"


def _natural(text: str) -> list[tuple[int, str]]:
    return [(int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", text) if p]


def records_to_frame(
    records: Sequence[CellRecord], domains_json: Sequence[str] | None = None
) -> polars.DataFrame:
    """The records as a polars DataFrame, one row each, with `read_ledger`'s columns.

    Args:
        records: the records.
        domains_json: the stored `domains_json` text of each record; encoded afresh when None.
    """
    import polars as pl

    def dtype(name: str) -> Any:
        kind = _TYPES[name]
        if kind == "datetime":
            return pl.Datetime("us", "UTC")
        if kind == "float":
            return pl.Float64
        return pl.Int64 if kind.startswith("int") else pl.String

    schema: dict[str, Any] = {name: dtype(name) for name in _FIELDS}
    data: dict[str, list[Any]] = {name: [getattr(r, name) for r in records] for name in _FIELDS}
    columns = sorted(
        {domain_column(d.name) for r in records for d in r.domains if d.additive}, key=_natural
    )
    for column in columns:
        schema[column] = pl.Float64
        data[column] = [0.0] * len(records)
    for index, record in enumerate(records):
        for domain in record.domains:
            if domain.additive:
                data[domain_column(domain.name)][index] += domain.attributed_j
    schema["domains_json"] = pl.String
    if domains_json is None:
        domains_json = [encode_domains(r.domains) for r in records]
    data["domains_json"] = list(domains_json)
    return pl.DataFrame(data, schema=schema)


@functools.cache
def _alpha3_table() -> dict[str, str]:
    return {word[:2]: word[2:] for word in _ISO_ALPHA3.split()}


def _place(zone: str) -> tuple[str, str, str]:
    """The alpha-3 country, cloud provider and cloud region of a zone (empty when unknown)."""
    provider, sep, region = zone.strip().partition(":")
    if sep and provider.lower() in ("aws", "gcp", "azure"):
        # The region table maps each cloud region to an Electricity Maps zone such as
        # `US-MIDA-PJM`, whose first part is the country.
        from carbonbook.intensity.embedded import cloud_region_grid_zone

        grid_zone = cloud_region_grid_zone(provider, region)
        country = grid_zone.split("-", 1)[0] if grid_zone else ""
        return _alpha3_table().get(country.upper(), ""), provider.lower(), region
    return _alpha3_table().get(zone.strip().split("-", 1)[0].upper(), ""), "", ""


def _codecarbon_part(domain: str) -> str | None:
    if domain in ("cpu", "psys"):
        return "cpu"
    if domain.startswith("gpu"):
        return "gpu"
    return "ram" if domain == "dram" else None


def _codecarbon_row(row: dict[str, Any]) -> dict[str, Any]:
    duration_s = float(row["duration_s"])
    pue = float(row["pue"])
    parts_j = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for domain in json.loads(row["domains_json"]):
        part = _codecarbon_part(domain["name"])
        if domain["additive"] and part is not None:
            parts_j[part] += float(domain["attributed_j"])
    emissions_kg = float(row["co2e_g"]) / 1000.0
    country, provider, region = _place(row["zone"])
    notebook = row["notebook_path"]

    out: dict[str, Any] = dict.fromkeys(CODECARBON_COLUMNS)
    out.update(
        timestamp=row["ended_at"].isoformat(timespec="seconds"),
        project_name=Path(notebook).stem if notebook else "carbonbook",
        run_id=row["session_id"],
        duration=duration_s,
        emissions=emissions_kg,
        emissions_rate=emissions_kg / duration_s if duration_s > 0 else 0.0,
        energy_consumed=float(row["energy_j"]) * pue / JOULES_PER_KWH,
        country_iso_code=country or None,
        cloud_provider=provider or None,
        cloud_region=region or None,
        tracking_mode="process",
        on_cloud="Y" if provider else "N",
        pue=pue,
    )
    for part, energy_j in parts_j.items():
        out[f"{part}_energy"] = energy_j * pue / JOULES_PER_KWH
        out[f"{part}_power"] = energy_j * pue / duration_s if duration_s > 0 else 0.0
    return out


def _codecarbon_frame(frame: polars.DataFrame) -> polars.DataFrame:
    import polars as pl

    needed = ("ended_at", "notebook_path", "session_id", "duration_s", "co2e_g", "energy_j")
    missing = [c for c in (*needed, "pue", "zone", "domains_json") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the frame lacks the columns {', '.join(missing)} that the codecarbon format "
            "needs; pass a frame from carbonbook.read_ledger or a list of records"
        )
    schema = {c: pl.String if c in _TEXT_COLUMNS else pl.Float64 for c in CODECARBON_COLUMNS}
    rows = [_codecarbon_row(row) for row in frame.iter_rows(named=True)]
    return pl.DataFrame(rows, schema=schema, orient="row")


def _format(target: Path, format: ExportFormat | None) -> ExportFormat:
    if format is not None:
        if format not in ("csv", "parquet", "codecarbon"):
            raise ValueError(
                f"unknown export format {format!r}; use csv, parquet or codecarbon"
            )
        return format
    found = _SUFFIXES.get(target.suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot tell the export format from the name {target.name!r}; end it in .csv or "
            ".parquet, or pass format='csv', 'parquet' or 'codecarbon'"
        )
    return found


def _write(frame: polars.DataFrame, target: Path, format: ExportFormat) -> None:
    import polars as pl

    if target.is_dir():
        raise ExportError(f"cannot export to {target}: it is a directory; give a file path")
    if not target.parent.is_dir():
        raise ExportError(
            f"cannot export to {target}: the directory {target.parent} does not exist; "
            "create it or choose another path"
        )
    # Written beside the target and renamed, so a failed export leaves no partial file.
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        if format == "parquet":
            frame.write_parquet(partial)
        else:
            frame.write_csv(partial)
        os.replace(partial, target)
    except (OSError, pl.exceptions.PolarsError) as exc:
        partial.unlink(missing_ok=True)
        raise ExportError(
            f"cannot export to {target}: {exc}; check the path and its permissions"
        ) from exc


def export_records(
    source: polars.DataFrame | Sequence[CellRecord],
    path: Path | str,
    *,
    format: ExportFormat | None = None,
) -> Path:
    """Write records to a CSV or Parquet file, or a CSV in CodeCarbon's layout.

    Args:
        source: a frame from `read_ledger` (written as it is, extra columns included) or
            a sequence of records.
        path: the file to write; replaced when it exists.
        format: `csv`, `parquet` or `codecarbon`; from the suffix (`.csv`, `.parquet`)
            when None.

    Returns:
        The path written.

    Raises:
        ValueError: the format is unknown or cannot be told from the suffix, or the
            source is neither a frame nor a sequence of records.
        ExportError: the file cannot be written (missing directory, permissions).
    """
    import polars as pl

    target = Path(path).expanduser()
    chosen = _format(target, format)
    if isinstance(source, pl.DataFrame):
        frame = source
    else:
        records = list(source)
        if not all(isinstance(r, CellRecord) for r in records):
            raise ValueError("export_records takes a polars DataFrame or a list of CellRecord")
        frame = records_to_frame(records)
    if chosen == "codecarbon":
        frame = _codecarbon_frame(frame)
    _write(frame, target, chosen)
    logger.debug("exported %d records to %s as %s", frame.height, target, chosen)
    return target
