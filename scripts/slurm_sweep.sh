#!/usr/bin/env bash
# Fill a table on a SLURM cluster without writing an sbatch file: Hydra's submitit launcher
# submits every (method, prune rate, seed) of the experiment as one element of a job array, all
# sharing one artifact store, then this script builds the report.
#
#   scripts/slurm_sweep.sh fmnist_fitting gpu            # experiment, partition
#   EXTRA="trainer=paper dataset.root=/data" scripts/slurm_sweep.sh cifar10_elfs gpu
#
# Run it inside tmux/screen (or a small CPU job): the launcher waits for the array to finish.
# A timed-out job is resubmitted (max_num_timeout in coreset_lab/conf/hydra/launcher/slurm.yaml) and resumes
# from the store and its last checkpoint. W&B: set WANDB_MODE=offline on nodes without internet
# and `wandb sync` the runs afterwards.
set -euo pipefail
experiment=${1:?usage: $0 EXPERIMENT [PARTITION]}
partition=${2:-}
cd "$(dirname "$0")/.."
sweep_dir="outputs/multirun/$(date +%Y-%m-%d)/$(date +%H-%M-%S)_${experiment}"
store_dir="${STORE_DIR:-$PWD/outputs/store}"   # must be on the shared file system

.venv/bin/coreset-lab -m "experiment=${experiment}" \
  hydra/launcher=slurm ${partition:+hydra.launcher.partition=$partition} \
  "hydra.sweep.dir=${sweep_dir}" "paths.store_dir=${store_dir}" ${EXTRA:-} || true
# Failed jobs are reported as "failed" cells; the report is built from whatever finished.
.venv/bin/coreset-lab-report "${sweep_dir}"
echo "report: ${sweep_dir}/report.md"
