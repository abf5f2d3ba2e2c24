"""The run's config, composed from the packaged configs as `coreset-lab <overrides>` composes it."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

import coreset_lab.runtime  # noqa: F401  (registers ${cpu_count:}, which configs use)

# The configs ship inside the package (a wheel or `pip install .` works from any directory);
# users add their own config directories with hydra.searchpath (README "Your own configs").
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
# Option groups that moved under protocol.* (issue 19): an override still spelt the old way is
# refused with the new spelling, before Hydra composes anything.
MOVED_TO_PROTOCOL = ("unseen", "elfs")


def moved_spelling(overrides: list[str]) -> str | None:
    """The refusal for the first override spelt `unseen.X=...` or `elfs.X=...`, if any."""
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        head, _, option = key.partition(".")
        if head in MOVED_TO_PROTOCOL and option:
            return (
                f"{key} is now spelt protocol.{option} (the {head}.* options moved under "
                f"protocol.*): write {override.replace(key, f'protocol.{option}', 1)}"
            )
    return None


def compose_config(overrides: list[str], job_name: str = "app") -> tuple[DictConfig, dict]:
    """(config, group choices) as `coreset-lab <overrides>` would compose them, for code that
    runs the pipeline in-process (the API, tests, scripts). As in a real run, the job sees no
    `hydra` node; `${hydra:...}` interpolations still resolve through the HydraConfig set here,
    and the run directory (`paths.output_dir`) is `hydra.run.dir`, made absolute."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from coreset_lab.errors import UserError

    if moved := moved_spelling(overrides):
        raise UserError(moved)
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(CONF_DIR, version_base="1.3", job_name=job_name):
            cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:  # an unknown option, key or group
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise UserError(lines[0]) from None
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(Path(cfg.hydra.run.dir).absolute())
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices
