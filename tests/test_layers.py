"""The house's import rules (pyproject.toml, [tool.importlinter]): pipelines -> transforms -> peloton, the kernels
free of Beam and Google Cloud, no import circle between two kernels. A change that breaks one fails here."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
