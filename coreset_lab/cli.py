"""`coreset-lab` / `python -m coreset_lab`: the Hydra entry point.

Bad input the user can fix (UserError) is printed as one line with exit status 2; Hydra's own
errors (unknown config group option, misspelt key) are already one message with exit status 1.
"""

from __future__ import annotations

import errno
import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from coreset_lab.errors import UserError

log = logging.getLogger("coreset_lab")
# conf/ sits beside the package in the source tree (an editable install, as the README uses).
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def quiet_third_party() -> None:
    # faiss' loader logs every CPU-specific build it could not import before the one it uses.
    for name in (
        "pytorch_lightning",
        "lightning",
        "lightning.pytorch",
        "lightning_fabric",
        "faiss.loader",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from coreset_lab.pipeline import run  # heavy imports after Hydra has parsed --help etc.

    quiet_third_party()
    choices = dict(HydraConfig.get().runtime.choices)
    try:
        return run(cfg, choices)["test_accuracy"]
    except UserError as err:
        fail(one_line(err))
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        fail(
            f"no space left on the device while writing {err.filename or 'results'}: free some "
            f"space or point paths.store_dir / hydra.run.dir elsewhere; finished artifacts in "
            f"{cfg.paths.store_dir} are intact and will be reused"
        )


def compose_config(overrides: list[str], job_name: str = "app") -> tuple[DictConfig, dict]:
    """(config, group choices) as `coreset-lab <overrides>` would compose them, for code that
    runs the pipeline in-process (tests, scripts). As in a real run, the job sees no `hydra`
    node; `${hydra:...}` interpolations still resolve through the HydraConfig set here."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3", job_name=job_name):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def one_line(err: UserError) -> str:
    """A UserError raised in a DataLoader worker arrives wrapped with the worker's traceback."""
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split("UserError: ", 1)[-1]
    return text


def fail(message: str) -> None:
    log.error("%s", message)
    print(f"coreset-lab: error: {message}", file=sys.stderr)
    raise SystemExit(2) from None


def main() -> None:
    try:
        _main()
    except BrokenPipeError:  # `coreset-lab --help | head`: the reader left, nothing is wrong
        sys.stderr.close()


if __name__ == "__main__":
    main()
