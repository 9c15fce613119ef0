"""Type-check what a user copies: every ```python block of README.md (in order, as one module, the way a reader
runs them one after another) and every file in examples/, with mypy, as a user's code importing denseav.

Usage: python .ci/check_snippets.py   (exit status: mypy's)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_module(readme: Path) -> str:
    blocks = BLOCK.findall(readme.read_text())
    if not blocks:
        sys.exit(f"no ```python blocks in {readme}")
    return "\n\n".join(f"# --- block {i + 1}\n{block}" for i, block in enumerate(blocks))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="denseav-snippets-") as tmp:
        snippet = Path(tmp) / "readme_snippets.py"
        snippet.write_text(readme_module(REPO / "README.md"))
        examples = sorted(str(p) for p in (REPO / "examples").glob("*.py"))
        env = dict(os.environ, MYPYPATH=str(REPO / "src"))  # the package as a user's code sees it
        config = str(REPO / "pyproject.toml")  # the same third-party settings as the package check
        cmd = [sys.executable, "-m", "mypy", "--config-file", config, "--no-incremental", str(snippet), *examples]
        print("mypy on README snippets and", len(examples), "examples", flush=True)
        return subprocess.call(cmd, env=env, cwd=tmp)


if __name__ == "__main__":
    sys.exit(main())
