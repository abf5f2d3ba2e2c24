import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from coreset_lab.cli import CONF_DIR

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the app's config as the CLI would, with run paths inside tmp_path."""

    def _make(*overrides: str):
        GlobalHydra.instance().clear()
        with initialize_config_dir(CONF_DIR, version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[
                    f"paths.root_dir={tmp_path}",
                    f"paths.output_dir={tmp_path}/run",
                    "logger=none",
                    *overrides,
                ],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):  # as in a real run: the task sees no `hydra` node (the resolver does)
            del cfg["hydra"]
        return cfg, choices

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
