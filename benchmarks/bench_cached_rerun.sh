#!/usr/bin/env bash
# What the store's identity checks cost on a fully cached rerun: a digits run and a Fashion-MNIST
# 10k run (the fitting table's recipe), each run once to fill a fresh store and then rerun
# REPEATS times; prints the median wall time of the reruns (whole process) for each project.
#   bash benchmarks/bench_cached_rerun.sh [PROJECT_DIR ...]   (default: this checkout)
# Compare two commits: git worktree add /tmp/old <commit>; bash benchmarks/bench_cached_rerun.sh /tmp/old .
# REPEATS=N (default 5), ONLY=digits or ONLY=fmnist10k.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
repeats="${REPEATS:-5}"
export OMP_NUM_THREADS=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fmnist=(dataset=fashion_mnist dataset.train_subset=10000 trainer=fmnist_cpu model.kwargs.width=16)
for project in "${@:-$here}"; do
  project="$(cd "$project" && pwd)"
  for name in ${ONLY:-digits fmnist10k}; do
    args=(logger=none "paths.store_dir=$work/$(basename "$project")-$name")
    [ "$name" = fmnist10k ] && args+=("${fmnist[@]}")
    run() { (cd "$project" && PYTHONPATH="$project" "$python" -m coreset_lab "${args[@]}" \
      "hydra.run.dir=$work/run" >/dev/null 2>&1); }
    run  # fills the store
    times=()
    for _ in $(seq "$repeats"); do
      start=$(date +%s.%N); run; end=$(date +%s.%N)
      times+=("$(echo "$end - $start" | bc)")
    done
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (repeats + 1) / 2 ))p")
    echo "$project $name cached rerun: median ${median} s over $repeats (all: ${times[*]})"
  done
done
