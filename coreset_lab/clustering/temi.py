"""TEMI deep clustering on cached embeddings, as ELFS uses it (label-free head choice).

TEMI: Adaloglou et al., "Exploring the Limits of Deep Image Clustering using Pretrained Models"
(BMVC 2023). ELFS (Zheng et al., ICLR 2025) trains it on frozen-encoder embeddings to get its
pseudo-labels. This module re-implements that training (no backbone, only the heads):

* `num_heads` heads, each Linear(d, 512) - GELU - Linear(512, 256) - L2-normalise -
  weight-normed Linear(256, k, bias=False) (the magnitude g trainable, initialised to 1).
  First layers: truncated normal (std 0.02), zero biases. The heads of one set are stored as
  stacked tensors and run as batched matmuls (same maths as 50 separate modules, faster).
* A student head set and a teacher head set; the teacher starts as a copy and follows the
  student by EMA (momentum 0.996, constant) after every optimiser step.
* Pairs (x, x'): x' is drawn uniformly from the `knn` (50) cosine nearest neighbours of x,
  anew every time x is drawn. No embedding augmentation.
* Loss of head h, with q = softmax(logits / 0.1) for student (s) and teacher (t):
  L_h = mean over the ordered pairs (v, w) in {(x, x'), (x', x)} of
        mean_batch[ -w(x, x') * log sum_k (q_s^h(k|v) q_t^h(k|w))^beta / p~_h(k) ],
  with beta = 0.6, the teacher agreement w = mean_h sum_k q_t^h(k|x) q_t^h(k|x') (no
  gradient, shared by the heads), and p~_h the EMA (0.9) of the teacher's batch-mean
  probabilities over both views, updated before the loss as in the reference. The sum over k
  is computed as a logsumexp of log-probabilities (same value, no 0^beta gradient problems).
  The total loss is the mean over the heads.
* AdamW, lr = lr * batch / 256 with a linear warm-up then a cosine to min_lr (ELFS: min_lr =
  lr, i.e. constant after warm-up), weight decay on weights, not on biases; the last layer is
  frozen for the first `freeze_last_layer` epochs; drop_last batches.
* **Head choice is label-free**: after every epoch the mean loss of each head over that epoch
  is kept; the chosen head is the argmin over the LAST epoch, and the pseudo-labels are the
  argmax of that teacher head. ELFS instead picks the checkpoint with the best Hungarian
  accuracy against test labels (a label leak). Nothing here ever sees a label.

ELFS values (elfs.md §2.2): 50 heads, k = #classes, 50 neighbours, beta 0.6, temperatures 0.1,
teacher momentum 0.996, probs momentum 0.9, batch 1024, lr 1e-4 per 256, weight decay 1e-4,
200 epochs with 20 warm-up epochs, last layer frozen for 1 epoch. Our CPU-friendly default is
30 epochs with 3 warm-up epochs (conf/clustering/temi.yaml); set 200/20 for the paper.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from coreset_lab.clustering.knn import as_float32, knn
from coreset_lab.clustering.options import ClusteringMethod, parse_options
from coreset_lab.errors import UserError
from coreset_lab.registry import register
from coreset_lab.training.optim import cosine_with_warmup, fit_in_process, helper_trainer, per_step
from coreset_lab.values import check_choice, check_int, check_real


@register("clustering")
@dataclass
class TEMIConfig(ClusteringMethod):
    name: ClassVar[str] = "temi"
    num_clusters: int | None = None
    num_heads: int = 50
    hidden_dim: int = 512
    bottleneck_dim: int = 256
    knn: int = 50
    beta: float = 0.6
    student_temp: float = 0.1
    teacher_temp: float = 0.1
    probs_momentum: float = 0.9
    teacher_momentum: float = 0.996
    batch_size: int = 1024
    lr: float = 1e-4
    min_lr: float | None = None  # None: = lr (constant after warm-up, as ELFS)
    weight_decay: float = 1e-4
    epochs: int = 30
    warmup_epochs: int = 3
    freeze_last_layer: int = 1
    embed_norm: bool = False
    l2_norm: bool = False
    accelerator: str = "auto"
    precision: str = "32-true"

    @classmethod
    def from_dict(cls, cfg: dict) -> TEMIConfig:
        c = parse_options(cls, cfg, "temi")
        for key in ("num_heads", "hidden_dim", "bottleneck_dim", "knn", "batch_size", "epochs"):
            check_int(getattr(c, key), f"clustering.{key}", 1)
        check_int(c.warmup_epochs, "clustering.warmup_epochs", 0)
        check_int(c.freeze_last_layer, "clustering.freeze_last_layer", 0)
        check_real(c.beta, "clustering.beta", 0.0, 1.0, low_open=True)
        for key in ("student_temp", "teacher_temp", "lr"):
            check_real(getattr(c, key), f"clustering.{key}", 0.0, math.inf, low_open=True)
        if c.min_lr is not None:
            check_real(c.min_lr, "clustering.min_lr", 0.0, math.inf)
        check_real(c.weight_decay, "clustering.weight_decay", 0.0, math.inf)
        for key in ("probs_momentum", "teacher_momentum"):
            check_real(getattr(c, key), f"clustering.{key}", 0.0, 1.0)
        for key in ("embed_norm", "l2_norm"):
            value = getattr(c, key)
            if not isinstance(value, (bool, np.bool_)):
                raise UserError(f"clustering.{key} must be true or false, got {value!r}")
        check_choice(c.accelerator, "clustering.accelerator", ("auto", "cpu", "gpu", "cuda"))
        c.precision = str(c.precision)
        check_choice(
            c.precision, "clustering.precision", ("32-true", "32", "bf16-mixed", "16-mixed")
        )
        return c

    def run(self, embeddings, k, seed, truth=None):
        return run_temi(embeddings, k, self, seed=seed)


class MultiHead(nn.Module):
    """`num_heads` DINO-style heads held as stacked tensors: [B, d] -> logits [H, B, k]."""

    def __init__(self, num_heads: int, in_dim: int, hidden: int, bottleneck: int, out_dim: int):
        super().__init__()
        h = num_heads
        self.w1 = nn.Parameter(torch.empty(h, in_dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(h, hidden))
        self.w2 = nn.Parameter(torch.empty(h, hidden, bottleneck))
        self.b2 = nn.Parameter(torch.zeros(h, bottleneck))
        # weight_norm of Linear(bottleneck, out_dim): weight[h] = g[h, :, None] * v / ||v||_row
        self.v = nn.Parameter(torch.empty(h, out_dim, bottleneck))
        self.g = nn.Parameter(torch.ones(h, out_dim))
        nn.init.trunc_normal_(self.w1, std=0.02)
        nn.init.trunc_normal_(self.w2, std=0.02)
        bound = 1.0 / math.sqrt(bottleneck)  # nn.Linear's default init of the last layer
        nn.init.uniform_(self.v, -bound, bound)

    @property
    def num_heads(self) -> int:
        return self.w1.shape[0]

    def forward(self, x: torch.Tensor, head: int | None = None) -> torch.Tensor:
        sl = slice(None) if head is None else slice(head, head + 1)
        z = torch.einsum("bd,hde->hbe", x, self.w1[sl]) + self.b1[sl, None, :]
        z = F.gelu(z)
        z = torch.baddbmm(self.b2[sl, None, :], z, self.w2[sl])
        z = F.normalize(z, dim=-1, p=2)
        v = self.v[sl]
        weight = self.g[sl, :, None] * v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return torch.bmm(z, weight.transpose(1, 2))


def temi_head_losses(
    student: torch.Tensor,
    teacher: torch.Tensor,
    pk: torch.Tensor,
    beta: float,
    student_temp: float,
    teacher_temp: float,
    probs_momentum: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TEMI loss per head and the updated prior.

    student, teacher: logits [H, 2B, k], the two views (x then x') stacked on dim 1.
    pk: [H, k] EMA prior (not modified). Returns (losses [H], new pk [H, k]).
    """
    student, teacher = student.float(), teacher.float()
    b = student.shape[1] // 2
    log_s = F.log_softmax(student / student_temp, dim=-1)
    with torch.no_grad():
        log_t = F.log_softmax(teacher / teacher_temp, dim=-1)
        p_t = log_t.exp()
        new_pk = pk * probs_momentum + p_t.mean(dim=1) * (1.0 - probs_momentum)
        # teacher agreement between the two views, averaged over heads: [B]
        weight = (p_t[:, :b] * p_t[:, b:]).sum(dim=-1).mean(dim=0)
        log_pk = new_pk.log()[:, None, :]

    def pmi(ls: torch.Tensor, lt: torch.Tensor) -> torch.Tensor:  # [H, B]
        return torch.logsumexp(beta * (ls + lt) - log_pk, dim=-1)

    loss_ab = -(weight * pmi(log_s[:, :b], log_t[:, b:])).mean(dim=1)
    loss_ba = -(weight * pmi(log_s[:, b:], log_t[:, :b])).mean(dim=1)
    return 0.5 * (loss_ab + loss_ba), new_pk


class _PairBatches(torch.utils.data.Dataset):
    """Indexed by a list of sample ids: returns (x, x') with x' a random one of x's neighbours."""

    def __init__(self, x: torch.Tensor, neighbors: np.ndarray, seed: int):
        self.x, self.neighbors = x, neighbors
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        pick = self.rng.integers(0, self.neighbors.shape[1], size=ids.shape[0])
        nbr = self.neighbors[ids, pick]
        return self.x[torch.from_numpy(ids)], self.x[torch.from_numpy(nbr)]


def _lightning_module_class():
    import pytorch_lightning as pl

    class TEMIModule(pl.LightningModule):
        def __init__(self, cfg: TEMIConfig, in_dim: int, k: int, batch: int, steps: int):
            super().__init__()
            self.cfg, self.batch, self.steps_per_epoch = cfg, batch, steps
            self.student = MultiHead(cfg.num_heads, in_dim, cfg.hidden_dim, cfg.bottleneck_dim, k)
            self.teacher = copy.deepcopy(self.student)
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            self.register_buffer("pk", torch.full((cfg.num_heads, k), 1.0 / k))
            self._sum = torch.zeros(cfg.num_heads, dtype=torch.float64)
            self._count = 0
            self.epoch_losses: list[np.ndarray] = []

        def training_step(self, batch, batch_idx):
            x = torch.cat(batch)
            s = self.student(x)
            with torch.no_grad():
                t = self.teacher(x)
            c = self.cfg
            losses, new_pk = temi_head_losses(
                s, t, self.pk, c.beta, c.student_temp, c.teacher_temp, c.probs_momentum
            )
            self.pk.copy_(new_pk)
            self._sum += losses.detach().to("cpu", torch.float64)
            self._count += 1
            loss = losses.mean()
            self.log("temi/loss", loss, on_step=False, on_epoch=True)
            return loss

        def on_train_epoch_start(self) -> None:
            self._sum.zero_()
            self._count = 0

        def on_after_backward(self) -> None:
            if self.current_epoch < self.cfg.freeze_last_layer:
                self.student.v.grad = None
                self.student.g.grad = None

        def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
            m = self.cfg.teacher_momentum
            pairs = zip(self.student.parameters(), self.teacher.parameters(), strict=True)
            with torch.no_grad():
                for ps, pt in pairs:
                    pt.mul_(m).add_(ps.detach(), alpha=1.0 - m)

        def on_train_epoch_end(self) -> None:
            if self._count:
                self.epoch_losses.append((self._sum / self._count).numpy().copy())

        def configure_optimizers(self):
            c = self.cfg
            s = self.student
            groups = [
                {"params": [s.w1, s.w2, s.v, s.g], "weight_decay": c.weight_decay},
                {"params": [s.b1, s.b2], "weight_decay": 0.0},
            ]
            scale = self.batch / 256.0
            base = c.lr * scale
            low = base if c.min_lr is None else c.min_lr * scale
            opt = torch.optim.AdamW(groups, lr=base)
            total = c.epochs * self.steps_per_epoch
            warm = min(c.warmup_epochs, c.epochs) * self.steps_per_epoch
            return per_step(opt, cosine_with_warmup(total, warm, low / base))

    return TEMIModule


def run_temi(
    embeddings: np.ndarray, k: int, cfg: TEMIConfig, seed: int = 0
) -> tuple[np.ndarray, None, dict]:
    """Train TEMI heads on `embeddings`; (pseudo-labels int64 [N], None, info)."""
    import pytorch_lightning as pl

    start = time.perf_counter()
    raw = as_float32(embeddings)
    n, d = raw.shape
    if n < 2:
        raise UserError(f"TEMI needs at least 2 samples, got {n}")
    k = check_int(k, "clustering.num_clusters", 1, n)
    n_nbr = min(cfg.knn, n - 1)
    neighbors, _ = knn(raw, n_nbr)  # cosine neighbours of the raw embeddings, as ELFS

    x = raw.astype(np.float64)
    if cfg.embed_norm:  # ELFS --embed_norm: standardise every dimension
        x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    if cfg.l2_norm:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    xt = torch.from_numpy(x.astype(np.float32))

    batch = min(cfg.batch_size, n)
    steps = n // batch  # drop_last
    pl.seed_everything(seed, workers=True, verbose=False)
    module = _lightning_module_class()(cfg, d, k, batch, steps)
    gen = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(n), generator=gen), batch, drop_last=True
    )
    loader = torch.utils.data.DataLoader(
        _PairBatches(xt, neighbors, seed), sampler=sampler, batch_size=None
    )
    trainer = helper_trainer(cfg.accelerator, cfg.precision, cfg.epochs)
    fit_in_process(trainer, module, loader)

    last = module.epoch_losses[-1]
    head = int(np.argmin(last))
    labels = predict_head(module.teacher, xt, head)
    info = {
        "method": "temi",
        "k": k,
        "head": head,
        "head_losses": [float(v) for v in last],
        "loss": float(last.mean()),
        "loss_history": [float(e.mean()) for e in module.epoch_losses],
        "epochs": cfg.epochs,
        "steps": int(trainer.global_step),
        "batch_size": batch,
        "lr": cfg.lr * batch / 256.0,
        "knn": n_nbr,
        "num_nonempty": int(np.unique(labels).size),
        "config": asdict(cfg),
        "seconds": time.perf_counter() - start,
    }
    return labels, None, info


@torch.no_grad()
def predict_head(heads: MultiHead, x: torch.Tensor, head: int, chunk: int = 8192) -> np.ndarray:
    """argmax of one head's logits for every row of `x` (int64 [N])."""
    heads.eval()
    device = heads.w1.device
    out = [
        heads(x[i : i + chunk].to(device), head=head)[0].argmax(dim=-1).cpu()
        for i in range(0, x.shape[0], chunk)
    ]
    return torch.cat(out).numpy().astype(np.int64)
