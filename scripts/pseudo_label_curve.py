"""How good must my encoder be? ELFS accuracy against pseudo-label accuracy, at one prune rate.

Each point is an ELFS run (`coreset_lab.run.pipeline.run`, same recipe, store and seeds) whose
pseudo-labels come from a different source: the oracle diagnostic with a share of its labels
corrupted (`oracle:0.2`: ground truth, 20% moved to another class), or a real clustering of an
encoder's embeddings (`kmeans:pca`, `kmeans:simclr`, `temi:pca`). The x axis is the pseudo-labels'
Hungarian accuracy (reported by every ELFS run), the y axis ELFS's final test accuracy; random and
full data at the same recipe are the reference lines. Writes pseudo_label_curve.json / .png.

    python scripts/pseudo_label_curve.py experiment=fmnist_claims --rate 0.9 --seeds 0 1 2 \\
        --jobs 2 --points oracle:0 oracle:0.2 oracle:0.4 kmeans:pca kmeans:simclr temi:pca
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from runs import run_many  # noqa: E402

from coreset_lab.runtime import quiet_third_party  # noqa: E402


def point_overrides(point: str) -> list[str]:
    """'oracle:0.2' -> the oracle with noise 0.2; 'kmeans:pca' -> k-means on the PCA encoder."""
    method, _, value = point.partition(":")
    if method == "oracle":
        return ["clustering=oracle", f"clustering.noise={float(value or 0)}"]
    return [f"clustering={method}", f"encoder={value or 'pca'}"]


def measure(args) -> dict:
    rate = f"selector.prune_rate={args.rate}"
    runs = {}
    for seed in args.seeds:
        for point in args.points:
            ov = [*args.overrides, "method=elfs", *point_overrides(point), rate, f"seed={seed}"]
            runs[point, seed] = (ov, f"{point.replace(':', '-')}-{seed}")
        for method in ("random", "full"):
            runs[method, seed] = ([*args.overrides, f"method={method}", rate, f"seed={seed}"],
                                  f"{method}-{seed}")  # fmt: skip
    done = run_many(runs, args.out / "runs", args.jobs)
    points = {
        point: {
            "label_accuracy": [done[point, s]["pseudo_label_quality"]["accuracy"]
                               for s in args.seeds],
            "test_accuracy": [done[point, s]["test_accuracy"] for s in args.seeds],
        }
        for point in args.points
    }  # fmt: skip
    for point, p in points.items():
        print(f"{point}: pseudo-labels {p['label_accuracy']}, ELFS {p['test_accuracy']}")
    references = {m: [done[m, s]["test_accuracy"] for s in args.seeds] for m in ("random", "full")}
    return {"rate": args.rate, "seeds": args.seeds, "points": points, "references": references}


def plot(data: dict, path: Path) -> None:
    mean = statistics.mean
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, p in data["points"].items():
        x, y = 100 * mean(p["label_accuracy"]), 100 * mean(p["test_accuracy"])
        sd = 100 * statistics.stdev(p["test_accuracy"]) if len(p["test_accuracy"]) > 1 else 0.0
        ax.errorbar(x, y, yerr=sd, marker="o" if name.startswith("oracle") else "s", capsize=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for name, style in (("random", ":"), ("full", "--")):
        ax.axhline(100 * mean(data["references"][name]), color="k", ls=style, lw=1, label=name)
    ax.set(
        xlabel="pseudo-label accuracy (Hungarian, %)",
        ylabel="ELFS final test accuracy (%)",
        title=f"ELFS vs pseudo-label quality, prune rate {data['rate']:g}",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("overrides", nargs="*", help="coreset-lab overrides (an experiment, a recipe)")
    p.add_argument("--points", nargs="+", default=["oracle:0", "oracle:0.2", "oracle:0.4",
                                                   "kmeans:pca"])  # fmt: skip
    p.add_argument("--rate", type=float, default=0.9)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--out", type=Path, default=Path("outputs/pseudo_label_curve"))
    p.add_argument("--jobs", type=int, default=1, help="runs at once (each: cores / jobs threads)")
    args = p.parse_args()
    args.out = args.out.resolve()
    args.overrides = [o for o in args.overrides if not o.startswith("hydra.")]
    quiet_third_party()
    data = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pseudo_label_curve.json").write_text(json.dumps(data, indent=2))
    plot(data, args.out / "pseudo_label_curve.png")
    print(f"wrote {args.out / 'pseudo_label_curve.png'}")


if __name__ == "__main__":
    main()
