"""The Jupyter kernel the notebooks run on, registered inside .venv under a fixed name.

papermill, nbval and JupyterLab find it by name (`roman-workbook`), so a notebook never runs on
whatever python happens to be first on PATH. The kernel does not capture the file descriptors of
child processes: otherwise the JVM's stdout and stderr (Spark's log lines) would land in cell
outputs and make nbval's comparisons flaky.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KERNEL_NAME = "roman-workbook"


def install() -> Path:
    """Write the kernel spec into this interpreter's prefix and return its path."""
    folder = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
            "--IPKernelApp.capture_fd_output=False",
        ],
        "display_name": "Roman workbook (.venv)",
        "language": "python",
        "env": {"PYTHONHASHSEED": "0", "MPLBACKEND": "module://matplotlib_inline.backend_inline"},
        "metadata": {"debugger": True},
    }
    path = folder / "kernel.json"
    path.write_text(json.dumps(spec, indent=1) + "\n")
    return path
