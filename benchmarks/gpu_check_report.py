"""gpu_check.py's summary: its results (and the tests' junit file) as Markdown.

One function per step; each copes with a step that failed or was stopped (no data, or a part).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path


def summarize(report: dict, junit: Path) -> str:
    steps = {s["name"]: s for s in report["steps"]}
    counts: dict[str, int] = {}
    for s in report["steps"]:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    tally = ", ".join(f"{n} {k}" for k, n in counts.items())
    lines = [
        f"# coreset-lab GPU check ({report['mode']}): {tally}; "
        f"{report.get('total_s', 0):.0f} s of a {report['budget_s']:.0f} s budget",
        "",
        "| step | status | seconds | CPU s | limit s |",
        "|---|---|---|---|---|",
    ]
    for s in report["steps"]:
        reason = f" ({s['reason']})" if s.get("reason") else ""
        lines.append(
            f"| {s['name']} | {s['status']}{reason} | {s.get('seconds', '-')} | "
            f"{s.get('cpu_s', '-')} | {s.get('limit_s', '-')} |"
        )
    sections = [
        ("env", "Environment", environment),
        ("tests", "GPU tests", lambda d: tests(d, junit)),
        ("engines", "Training engines", engines),
        ("parallel", "Several models on one device", parallel),
        ("e2e", "End to end", end_to_end),
        ("cell", "One table cell", cell),
        ("knn", "k-NN at scale", knn),
    ]
    for name, title, fn in sections:
        step = steps.get(name, {})
        lines += ["", f"## {title}"]
        data = step.get("data")
        if data is None and name != "tests":
            lines.append(f"no results ({step.get('status', 'not run')})")
            continue
        try:
            lines += fn(data)
        except Exception as err:  # noqa: BLE001 - a partial result must not hide the rest
            lines.append(f"(could not summarise: {type(err).__name__}: {err})")
    return "\n".join(lines) + "\n"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def environment(env: dict) -> list[str]:
    tc, smi = env.get("torch_cuda", {}), env.get("nvidia_smi", {})
    gpus = smi.get("gpus") or [{}]
    lib = env.get("libraries", {})
    missing = [k for k, v in (env.get("imports") or {}).items() if v != "ok"]
    faiss = env.get("faiss", {})
    return [
        f"- GPU: {tc.get('device', 'none')} (capability {tc.get('capability')}, "
        f"{tc.get('memory_gib')} GiB, {tc.get('multiprocessors')} SMs, bf16 {tc.get('bf16')}); "
        f"driver {gpus[0].get('driver_version', smi.get('error'))}",
        f"- torch {lib.get('torch')} (CUDA {tc.get('cuda_build')}, cuDNN {tc.get('cudnn')}), "
        f"Lightning {lib.get('pytorch-lightning')}, timm {lib.get('timm')}, triton "
        f"{lib.get('triton')}, Python {env.get('python')}, {env.get('cpus')} CPUs",
        f"- faiss {faiss.get('version', faiss.get('error'))}, GPU support "
        f"{faiss.get('gpu_support')}; clustering backend (auto): {env.get('clustering_backend')}",
        f"- C compiler (torch.compile): {env.get('compiler')}",
        f"- imports failing: {missing or 'none'}",
        f"- dense bf16 peak used for shares: {env.get('bf16_peak_flops')}",
    ]


def junit_cases(path: Path) -> list[tuple[str, str, str]]:
    """(test name, passed/failed/error/skipped, first line of the message) per test case."""
    if not path.exists():
        return []
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = "failed" if kind == "failure" else kind
                message = _first_line(node)
        cases.append((case.get("name", "?"), outcome, message))
    return cases


def _first_line(node) -> str:
    """A failure's message; a module skipped at collection keeps its reason in the text."""
    text = node.get("message") or ""
    if text == "collection skipped" and node.text:
        text = node.text.split("Skipped: ", 1)[-1].rstrip("')")
    return (text.splitlines() or [""])[0][:300]


def tests(measured: dict | None, junit: Path) -> list[str]:
    cases = junit_cases(junit)
    counts: dict[str, int] = {}
    for _, outcome, _ in cases:
        counts[outcome] = counts.get(outcome, 0) + 1
    lines = [f"- {', '.join(f'{n} {k}' for k, n in counts.items()) or 'no junit results'}"]
    lines += [f"- {outcome.upper()} {name}: {msg}" for name, outcome, msg in cases
              if outcome in ("failed", "error")]  # fmt: skip
    skipped = {msg for _, outcome, msg in cases if outcome == "skipped"}
    lines += [f"- skipped: {msg}" for msg in sorted(skipped)]
    for name, values in (measured or {}).items():
        lines.append(f"- measured {name}: {json.dumps(values, default=str)[:600]}")
    return lines


def engines(data: dict) -> list[str]:
    lines = [f"workload: {data['workload']}", "",
             f"| loop | median img/s | vs {data['ratio_to']} | share of bf16 peak | warm-up s |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, r in data["loops"].items():
        lines.append(
            f"| {name} | {r['median_img_s']:.0f} | {r['ratio']:.3f} | "
            f"{_pct(r['share_of_bf16_peak'])} | {r['warmup_s']:.1f} |"
        )
    lines += [f"| {name} | FAILED: {err[:300]} | | | |" for name, err in data["errors"].items()]
    return lines


def parallel(data: dict) -> list[str]:
    lines = [f"workload: {data['workload']}", "", "| way | median img/s | vs sequential |",
             "|---|---|---|"]  # fmt: skip
    for name, r in data["ways"].items():
        lines.append(f"| {name} | {r['median_img_s']:.0f} | {r['ratio']:.2f} |")
    return lines


def end_to_end(data: dict) -> list[str]:
    lines = [f"workload: {data['workload']}", "", "| configuration | wall s | stages (s) |",
             "|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        if "error" in r:
            lines.append(f"| {r['name'].strip()} | FAILED | {r['error'][:300]} |")
            continue
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_seconds"].items() if v >= 0.05)
        lines.append(f"| {r['name'].strip()} | {r['median_s']:.1f} | {stages} |")
    return lines


def cell(data: dict) -> list[str]:
    lines = [f"workload: {data['workload']}", "",
             "| recipe | measured runs s | scoring s/epoch (+once) | target ms/iteration (+once) "
             "| full cell (extrapolated) |", "|---|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        runs = " / ".join(f"{run['wall_s']:.1f}" for run in r.get("runs", []))
        if "error" in r or "extrapolated_cell_s" not in r:
            why = f"FAILED: {r['error'][:300]}" if "error" in r else "stopped"
            lines.append(f"| {r['recipe']} | {runs or '-'} | {why} | | |")
            continue
        lines.append(
            f"| {r['recipe']} | {runs} | {r['scoring_s_per_epoch']:.2f} "
            f"(+{r['scoring_fixed_s']:.1f}) | {1000 * r['target_s_per_iteration']:.1f} "
            f"(+{r['target_fixed_s']:.1f}) | {r['extrapolated_cell_s'] / 60:.1f} min for "
            f"{r['proxy_epochs']} epochs + {r['target_iterations']} iterations |"
        )
    return lines


def knn(data: dict) -> list[str]:
    lines = [f"k = {data['k']}, d = {data['dim']}", "",
             "| backend | seconds per N | t ~ N^p | 1.28 M x d (fit / N^2) |",
             "|---|---|---|---|"]  # fmt: skip
    for r in data["rows"]:
        times = ", ".join(f"{n:,}: {t:.2f}" for n, t in zip(r["sizes"], r["seconds"], strict=False))
        lines.append(
            f"| {r['backend']} | {times} | {r['power']:.2f} | "
            f"{r['extrapolated_fit_s'] / 60:.1f} / {r['extrapolated_quadratic_s'] / 60:.1f} min |"
        )
    return lines
