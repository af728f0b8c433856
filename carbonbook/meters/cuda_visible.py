"""Which GPUs a process may use, read from `CUDA_VISIBLE_DEVICES` as CUDA reads it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["visible_positions"]


def visible_positions(
    value: str | None,
    uuids: Sequence[str],
    mig_uuids: Callable[[int], Sequence[str]],
) -> list[tuple[int, bool]]:
    """Which boards CUDA exposes under a `CUDA_VISIBLE_DEVICES` value.

    Unset: every board. Otherwise a comma-separated list, read as CUDA reads it. An
    integer is a CUDA ordinal, mapped to the board at that position in NVML order: right
    under `CUDA_DEVICE_ORDER=PCI_BUS_ID` (NVML enumerates by PCI bus id), possibly wrong
    under CUDA's default fastest-first order on a machine with unlike GPUs. `GPU-<uuid>`
    matches the board whose UUID starts with it; `MIG-<uuid>` (or the older
    `MIG-GPU-<uuid>/<gi>/<ci>`) the board that holds that MIG instance. The first entry
    that matches nothing, matches two boards or repeats one ends the list, so an empty
    value or one starting with `-1` exposes no board.

    Args:
        value: the variable's value, or None when it is unset.
        uuids: the boards' UUIDs in NVML order.
        mig_uuids: gives the MIG instance UUIDs of the board at a position.

    Returns:
        `(position, via_mig)` pairs in CUDA order; `via_mig` marks a MIG entry.
    """
    if value is None:
        return [(position, False) for position in range(len(uuids))]
    chosen: list[tuple[int, bool]] = []
    for raw in value.split(","):
        found = _match_entry(raw.strip(), uuids, mig_uuids)
        if found is None or found[0] in {position for position, _ in chosen}:
            break
        chosen.append(found)
    return chosen


def _match_entry(
    entry: str, uuids: Sequence[str], mig_uuids: Callable[[int], Sequence[str]]
) -> tuple[int, bool] | None:
    """The board one `CUDA_VISIBLE_DEVICES` entry names, or None when it is invalid."""
    if entry.isdigit():
        return (int(entry), False) if int(entry) < len(uuids) else None
    positions = range(len(uuids))
    if entry.startswith("GPU-") and len(entry) > 4:
        matches = [i for i in positions if uuids[i].startswith(entry)]
    elif entry.startswith("MIG-GPU-"):
        parent = entry.removeprefix("MIG-").split("/")[0]
        matches = [i for i in positions if uuids[i].startswith(parent)]
    elif entry.startswith("MIG-") and len(entry) > 4:
        matches = [i for i in positions if any(m.startswith(entry) for m in mig_uuids(i))]
    else:
        return None
    return (matches[0], entry.startswith("MIG-")) if len(matches) == 1 else None
