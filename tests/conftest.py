import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from coreset_lab.run.config import compose_config

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the app's config as the CLI would, with run paths inside tmp_path."""

    def _make(*overrides: str):
        paths = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run"]
        return compose_config([*paths, "logger=none", *overrides])

    yield _make
    GlobalHydra.instance().clear()


def subprocess_env() -> dict:
    """One intra-op thread: these models are tiny, and on a 2-core CI machine shared with the
    test process itself, two threads per process oversubscribe the cores."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def run_cli(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = subprocess_env()
    return subprocess.run(
        [sys.executable, "-m", "coreset_lab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
