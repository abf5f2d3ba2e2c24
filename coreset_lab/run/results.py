"""What a run leaves in its directory, and the table it prints."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

import coreset_lab
from coreset_lab.files import atomic_write_bytes, save_npy


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(coreset_lab.__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_run(out_dir: Path, cfg: DictConfig, result: dict, scores, coreset) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    if scores is not None:
        save_npy(out_dir / "scores.npy", np.asarray(scores, dtype=np.float64))
        plot_scores(out_dir / "scores_hist.png", np.asarray(scores), np.asarray(coreset), result)
    save_npy(out_dir / "coreset.npy", np.asarray(coreset, dtype=np.int64))
    atomic_write_bytes(out_dir / "results.json", json.dumps(result, indent=2).encode())


def write_failure(
    out_dir: Path, cfg: DictConfig, method: str, err: BaseException, extra: dict | None = None
) -> None:
    """Best effort (the disk may be full, the config unreadable): never hides the original
    error."""
    try:
        _write_failure(out_dir, cfg, method, err, extra or {})
    except Exception as problem:  # noqa: BLE001 - a record is a courtesy, the error is the news
        logging.getLogger(__name__).warning("no failed record in %s: %s", out_dir, problem)


def _write_failure(
    out_dir: Path, cfg: DictConfig, method: str, err: BaseException, extra: dict
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "status": "failed",
        "error": f"{type(err).__name__}: {err}",
        "method": method,
        "dataset": cfg.dataset.name,
        "prune_rate": float(cfg.selector.get("prune_rate", 0.0)),
        "seed": int(cfg.seed),
        "version": coreset_lab.__version__,
        **extra,
    }
    atomic_write_bytes(out_dir / "results.json", json.dumps(record, indent=2).encode())


def plot_scores(path: Path, scores: np.ndarray, coreset: np.ndarray, result: dict) -> None:
    """Histogram of all scores with the kept ones on top: where in the difficulty range the
    coreset sits (top-k hard: the right tail; CCS: spread out; ELFS: a band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=60)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(scores[finite], bins=bins, color="0.75", label="all samples")
    kept = scores[coreset][np.isfinite(scores[coreset])]
    ax.hist(kept, bins=bins, color="C0", alpha=0.8, label="coreset")
    ax.set(
        xlabel="score (higher = harder)",
        ylabel="samples",
        title=f"{result['method']} on {result['dataset']}, prune rate {result['prune_rate']:g}",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stored(result: dict) -> str:
    artifacts = result.get("artifacts", {})
    built = set(artifacts.get("built", []))
    reused = [a for a in artifacts.get("reused", []) if a not in built]  # built here: not stored
    return " (a stored evaluation)" if any(a.startswith("evaluation/") for a in reused) else ""


def _models_text(cost: dict) -> str:
    """How many models the method needs, and how many of them this run actually trained."""
    needed, here = cost["models_trained"], cost.get("models_built_this_run", 0)
    if needed == 0:
        return "0"
    if here == needed:
        return f"{needed} (all trained in this run)"
    return f"{needed} ({here} trained in this run, {needed - here} reused from the store)"


def _artifacts_text(artifacts: dict) -> str:
    parts = [f"{len(artifacts.get('built', []))} built"]
    parts.append(f"{len(artifacts.get('reused', []))} reused from the store")
    if artifacts.get("quarantined"):
        parts.append(f"{len(artifacts['quarantined'])} invalid moved aside and rebuilt")
    return ", ".join(parts)


def _accuracy_text(result: dict) -> str:
    if result["test_accuracy"] is None:
        why = result.get("selection_only") or "evaluate=false"
        return f"not evaluated (selection only: {why})"
    return f"{100 * result['test_accuracy']:.2f}%" + _stored(result)


def format_table(result: dict) -> str:
    rows = [
        ("method", result["method"]),
        ("dataset", result["dataset"]),
        ("prune rate", f"{result['prune_rate']:.2f}"),
        ("seed", str(result["seed"])),
        ("coreset size", f"{result['coreset_size']} / {result['n_train']}"),
        ("final test accuracy", _accuracy_text(result)),
        ("models trained", _models_text(result["cost"])),
        ("scoring cost", f"{result['cost']['sample_epochs']} sample-epochs"),
        ("artifacts", _artifacts_text(result.get("artifacts", {}))),
    ]
    rows += [(f"time: {k}", f"{v:.1f} s") for k, v in result["stage_seconds"].items()]
    width = max(len(k) for k, _ in rows)
    line = "-" * (width + 3 + max(len(v) for _, v in rows))
    body = "\n".join(f"{k:<{width}} | {v}" for k, v in rows)
    return f"{line}\n{body}\n{line}"
