"""How the fast engine takes an optimisation step: for one model, or for several at once.

`SingleStepper` is the ordinary module + `torch.optim.SGD` + per-iteration schedule (optionally
`torch.compile`d once per architecture and reused, weights re-initialised, for every later model).
`StackedStepper` trains K models of one architecture in lockstep as one: their weights stacked
along a new leading dimension, one `torch.func.vmap`ped forward and backward per step (K small
kernels become one K-times larger kernel), and SGD applied to the stacked tensors with a per-model
learning rate. Batch norm keeps per-model running statistics (the buffers are stacked too), so
every model computes what it would compute alone, up to floating-point rounding. Under autocast
a group's batch norm computes in float32: vmap's batch rule drops the (stacked) affine weights
from the batch-norm call, and CUDA's kernel then wants bf16 running statistics (measured on an
H200: "Expected running_mean to have type BFloat16 but got Float" in the backward). With it a
bf16 group on CUDA trains, but drifts from its models alone beyond the bf16 bound (mean p_label
gap 0.037, tests/test_gpu.py), so validate.py refuses bf16 groups on CUDA.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from coreset_lab.training.optim import recipe_schedule, sgd_with_schedule
from coreset_lab.training.recipe import Recipe

Forward = Callable[[torch.Tensor], torch.Tensor]

# Compiled graphs survive from one model to the next (folds, stages, seeds) in this process.
_COMPILED: dict[tuple[str, str], tuple[nn.Module, Forward]] = {}


def compiled_copy(model: nn.Module, device: torch.device) -> tuple[nn.Module, Forward]:
    """A module of `model`'s architecture holding `model`'s current weights, with its compiled
    forward: compiled the first time this architecture is seen, then only re-initialised."""
    key = (repr(model), str(device))
    if key not in _COMPILED:
        template = copy.deepcopy(model).to(device)
        _COMPILED[key] = (template, torch.compile(template))
    template, forward = _COMPILED[key]
    template.load_state_dict(model.state_dict())
    return template, forward


class SingleStepper:
    def __init__(self, model, recipe: Recipe, total_steps: int, device, compile_, autocast):
        self.model = model
        self.autocast = autocast
        self.net, self.forward = compiled_copy(model, device) if compile_ else (model, model)
        self.opt, self.sched = sgd_with_schedule(self.net.parameters(), recipe, total_steps)
        self.label_smoothing = recipe.label_smoothing

    def train_step(self, members: Sequence[int], xs, ys) -> tuple[list, torch.Tensor]:
        self.net.train()
        with self.autocast():
            logits = self.forward(xs[0])
            loss = F.cross_entropy(logits, ys[0], label_smoothing=self.label_smoothing)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        return [logits.detach()], loss.detach()[None]

    def eval_forward(self, k: int) -> Forward:
        self.net.eval()
        return self.net

    def finish(self) -> None:
        if self.net is not self.model:
            self.model.load_state_dict(self.net.state_dict())

    def state_dict(self) -> dict:
        return {"model": self.net.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict()}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])


def _float32_input(module: nn.Module, args: tuple) -> tuple | None:
    x = args[0]
    return (x.float(), *args[1:]) if x.dtype in (torch.bfloat16, torch.float16) else None


class StackedStepper:
    def __init__(
        self, models: Sequence[nn.Module], recipe: Recipe, totals: Sequence[int], autocast
    ):
        from torch.func import functional_call, stack_module_state

        self.models = list(models)
        self.autocast = autocast
        self.params, self.buffers = stack_module_state(self.models)
        self.base = copy.deepcopy(self.models[0]).to("meta")  # structure only
        for module in self.base.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.register_forward_pre_hook(_float32_input)
        self.call = lambda p, b, x: functional_call(self.base, (p, b), (x,))
        self.vcall = torch.vmap(self.call)
        self.recipe = recipe
        self.factors = [recipe_schedule(t, recipe) for t in totals]
        self.steps = [0] * len(self.models)
        self.momentum = {k: torch.zeros_like(v) for k, v in self.params.items()}

    def _forward_group(self, group: list[int], xs) -> torch.Tensor:
        """Logits [len(group), B, C] of the models `group`, whose batches all have size B."""
        x = torch.stack(xs)
        if len(group) == len(self.models):
            return self.vcall(self.params, self.buffers, x)
        sel = torch.tensor(group, device=x.device)
        params = {k: v.index_select(0, sel) for k, v in self.params.items()}
        buffers = {k: v.index_select(0, sel) for k, v in self.buffers.items()}
        logits = self.vcall(params, buffers, x)
        with torch.no_grad():  # batch norm updated the selected copies: put them back
            for k, v in buffers.items():
                self.buffers[k].index_copy_(0, sel, v)
        return logits

    def train_step(self, members: Sequence[int], xs, ys) -> tuple[list, torch.Tensor]:
        """One step of the models `members` (others sit this step out), batch i for member i."""
        self.base.train()
        by_size: dict[int, list[int]] = {}
        for i, x in enumerate(xs):  # an epoch's last batches may differ in size by a sample
            by_size.setdefault(x.shape[0], []).append(i)
        logits: list = [None] * len(members)
        losses: list = [None] * len(members)
        smoothing = self.recipe.label_smoothing
        with self.autocast():
            for rows in by_size.values():
                out = self._forward_group([members[i] for i in rows], [xs[i] for i in rows])
                for j, i in enumerate(rows):
                    logits[i] = out[j]
                    losses[i] = F.cross_entropy(out[j], ys[i], label_smoothing=smoothing)
        loss = torch.stack(losses)
        for p in self.params.values():
            p.grad = None
        loss.sum().backward()  # each model's loss reaches only its own slice of the weights
        self._sgd(members)
        return [z.detach() for z in logits], loss.detach()

    @torch.no_grad()
    def _sgd(self, members: Sequence[int]) -> None:
        """torch.optim.SGD's update (weight decay, momentum, Nesterov) on the stacked weights, each
        model with the learning rate of its own schedule; models not in `members` are left as is."""
        r = self.recipe
        lr, active = torch.zeros(len(self.models)), torch.zeros(len(self.models), dtype=torch.bool)
        for k in members:
            lr[k] = r.lr * self.factors[k](self.steps[k])
            active[k] = True
            self.steps[k] += 1
        device = next(iter(self.params.values())).device
        lr, active = lr.to(device), active.to(device)  # two small copies a step, not two a tensor
        nesterov = r.nesterov and r.momentum > 0
        for name, p in self.params.items():
            shape = (-1,) + (1,) * (p.dim() - 1)
            rate, on = lr.view(shape), active.view(shape)
            d = p.grad.add(p, alpha=r.weight_decay)
            if r.momentum > 0:
                buf = self.momentum[name]
                buf.copy_(torch.where(on, buf * r.momentum + d, buf))
                d = d.add(buf, alpha=r.momentum) if nesterov else buf
            p.sub_(d * rate)

    def eval_forward(self, k: int) -> Forward:
        self.base.eval()
        params = {n: v[k] for n, v in self.params.items()}
        buffers = {n: v[k] for n, v in self.buffers.items()}
        return lambda x: self.call(params, buffers, x)

    def finish(self) -> None:
        for k, model in enumerate(self.models):
            state = {n: v[k].detach() for n, v in {**self.params, **self.buffers}.items()}
            model.load_state_dict(state)

    def state_dict(self) -> dict:
        detached = {k: v.detach() for k, v in self.params.items()}
        return {"params": detached, "buffers": self.buffers, "momentum": self.momentum,
                "steps": list(self.steps)}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for key in ("params", "buffers", "momentum"):
                target = getattr(self, key)
                for name, value in state[key].items():
                    target[name].copy_(value)
        self.steps = list(state["steps"])
