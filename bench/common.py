"""Pieces shared by the benchmark scripts."""

from __future__ import annotations

from pathlib import Path

from carbonbook.meters.fake_powercap import FakePowercapTree


def server_tree(root: Path, *, with_core: bool = True) -> FakePowercapTree:
    """A fake tree of a two-socket server: package, core and dram per socket, plus the
    MMIO duplicate of package-0 (which carbonbook skips)."""
    tree = FakePowercapTree(root)
    for socket in range(2):
        tree.add_zone(
            f"intel-rapl:{socket}", f"package-{socket}", power_w=120.0, start_uj=10 + socket
        )
        if with_core:
            tree.add_zone(f"intel-rapl:{socket}:0", "core", power_w=80.0, start_uj=20 + socket)
        tree.add_zone(f"intel-rapl:{socket}:1", "dram", power_w=12.0, start_uj=30 + socket)
    tree.add_zone("intel-rapl-mmio:0", "package-0", power_w=120.0, start_uj=10)
    return tree
