"""A kernelspec that starts an IPython kernel with this very Python.

The `python3` kernelspec that ipykernel installs runs whatever `python` comes first on
PATH, which outside an activated virtual environment is not the interpreter carbonbook
is installed in. Running notebooks with this spec makes sure the kernel sees carbonbook.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["KERNEL_NAME", "this_python_kernelspec"]

KERNEL_NAME = "carbonbook-python"


@contextlib.contextmanager
def this_python_kernelspec(*, quiet: bool = False) -> Iterator[str]:
    """Make the kernelspec `carbonbook-python` visible through JUPYTER_PATH meanwhile.

    Args:
        quiet: start the kernel with its own log at ERROR level, which hides its start-up
            notices (such as the one about unencrypted TCP on 127.0.0.1).

    Yields:
        The kernel name to pass to papermill, nbclient or jupyter_client.
    """
    with tempfile.TemporaryDirectory(prefix="carbonbook-kernel-") as directory:
        spec_dir = Path(directory) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        if quiet:
            argv.append("--IPKernelApp.log_level=ERROR")
        spec = {
            "argv": argv,
            "display_name": f"Python {sys.version_info.major}.{sys.version_info.minor}",
            "language": "python",
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [directory, previous]))
        try:
            yield KERNEL_NAME
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous
