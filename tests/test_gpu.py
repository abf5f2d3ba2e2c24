"""The GPU paths, on a CUDA device (skipped without one): benchmarks/gpu_check.py runs these.

What each test holds to, and why that tolerance. Both engines (and a vmapped group and its
models trained alone) draw the same samples and augmentations and take the same SGD steps; on a
GPU only the kernels differ (the fast engine runs channels_last; atomics reorder sums), and
training amplifies rounding: on the CPU, float32 groups drift to a mean |p_label difference| of
~1e-3 (max ~0.01) over 3 epochs of digits. So:
* float64 (TF32 moot): the same maths, every weight to 1e-6 (the per-sample recorder keeps
  float32, so float64 trainings record nothing);
* float32 (TF32 off): mean |difference| of each statistic <= 5e-3, test accuracy within 2 points;
* bf16 autocast (8 bits of mantissa): mean |p_label difference| <= 0.03, accuracy within 3 points.
* torch.compile: one compiled module per architecture, reused for the next fold with no new
  graph; its predictions within 0.05 (mean |probability difference|, bf16) of eager training.
* k-NN and k-means on the GPU (torch, or faiss-gpu where installed) against faiss-cpu on the same
  data: the same neighbours and the same Lloyd iterations from the same start.
* bf16 embedding extraction with a timm ViT: cosine >= 0.99 to float32 features for every image.
Measured values go to the JSON file named by $CORESET_LAB_GPU_REPORT (before any assertion, so a
failure still reports its numbers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

if not torch.cuda.is_available():  # before the imports below: CI collects this file on every run
    pytest.skip("needs a CUDA device", allow_module_level=True)

from coreset_lab.clustering.torch_ops import full_precision
from coreset_lab.data import build_dataset
from coreset_lab.models import build_model
from coreset_lab.training import steppers
from coreset_lab.training.budget import Budget
from coreset_lab.training.fast import Plan, train_models
from coreset_lab.training.fit import train_classifier
from coreset_lab.training.predict import accuracy, predict_probs
from coreset_lab.training.recipe import Recipe

pytestmark = pytest.mark.gpu
STATS = ("p_label", "p_other", "loss", "p_sqnorm")


@pytest.fixture
def report(request):
    """A dict of measured values, added to $CORESET_LAB_GPU_REPORT under the test's name."""
    values: dict = {}
    yield values
    path = os.environ.get("CORESET_LAB_GPU_REPORT")
    if path and values:
        file = Path(path)
        data = json.loads(file.read_text()) if file.exists() else {}
        data[request.node.name] = values
        file.write_text(json.dumps(data, indent=1, default=float))


@pytest.fixture(scope="module")
def digits():
    return build_dataset("digits")


def _cnn(seed: int, width: int = 16):
    torch.manual_seed(seed)
    return build_model("small_cnn", 10, 1, 8, width=width)


PRECISIONS = {"float64": "32-true", "float32": "32-true", "bf16": "bf16-mixed"}


def _recipe(engine: str, dtype: str, **kw) -> Recipe:
    precision = PRECISIONS[dtype]
    return Recipe(batch_size=64, lr=0.05, progress=False, engine=engine, precision=precision, **kw)


@contextlib.contextmanager
def _numerics(dtype: str):
    """float64: models and inputs in float64; float32: TF32 off; bf16: autocast (the recipe)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(full_precision())
        if dtype == "float64":
            torch.set_default_dtype(torch.float64)
            stack.callback(torch.set_default_dtype, torch.float32)
        yield


def _gaps(a, b) -> dict:
    """max and mean |a - b| of every recorded statistic where both recorded."""
    out = {}
    if a is None:  # float64: nothing recorded
        return out
    for k in STATS:
        d = np.abs(getattr(a, k) - getattr(b, k))[a.seen & b.seen]
        out[k] = {"max": float(d.max()), "mean": float(d.mean())}
    return out


def _weight_gap(m1, m2) -> float:
    s1, s2 = m1.state_dict(), m2.state_dict()
    return max(float((s1[k].double().cpu() - s2[k].double().cpu()).abs().max()) for k in s1)


def _check(gaps: dict, weight_gap: float, acc: tuple[float, float], dtype: str) -> None:
    if dtype == "float64":
        assert all(g["max"] <= 1e-6 for g in gaps.values()), gaps
        assert weight_gap <= 1e-6
    elif dtype == "float32":
        assert all(g["mean"] <= 5e-3 for g in gaps.values()), gaps
        assert abs(acc[0] - acc[1]) <= 0.02, acc
    else:
        assert gaps["p_label"]["mean"] <= 0.03, gaps
        assert abs(acc[0] - acc[1]) <= 0.03, acc


def _test_accuracy(fit, data) -> float:
    return accuracy(predict_probs(fit.module, data.test), data.test_targets)


# --- engines ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(PRECISIONS))
def test_fast_and_lightning_engines_agree_on_cuda(digits, report, dtype):
    fits = {}
    with _numerics(dtype):
        for engine in ("lightning", "fast"):
            start = time.perf_counter()
            fits[engine] = train_classifier(
                _cnn(0), digits, digits.train_targets, _recipe(engine, dtype),
                Budget(epochs=2), seed=3, record=dtype != "float64",
            )  # fmt: skip
            report[f"{engine}_seconds"] = time.perf_counter() - start
        acc = tuple(_test_accuracy(fits[e], digits) for e in ("fast", "lightning"))
    light, fast = fits["lightning"], fits["fast"]
    gaps, weight_gap = _gaps(fast.dynamics, light.dynamics), _weight_gap(fast.module, light.module)
    conv = next(p for p in fast.module.model.parameters() if p.dim() == 4)
    channels_last = conv.is_contiguous(memory_format=torch.channels_last)
    report.update(gaps=gaps, weight_gap=weight_gap, accuracy_fast_lightning=acc,
                  fast_channels_last=channels_last)  # fmt: skip
    assert channels_last  # trainer.channels_last=auto: on, on CUDA
    _check(gaps, weight_gap, acc, dtype)


@pytest.mark.parametrize("dtype", list(PRECISIONS))
def test_a_vmapped_group_equals_separate_trainings_on_cuda(digits, report, dtype):
    subsets = [np.arange(0, 449), np.arange(449, 897), np.arange(897, 1347)]  # 8, 7, 8 steps
    recipe, budget = _recipe("fast", dtype, warmup_fraction=0.2), Budget(epochs=3)
    record = dtype != "float64"

    def plans():
        return [Plan(_cnn(10 + k), s, seed=k) for k, s in enumerate(subsets)]

    with _numerics(dtype):
        start = time.perf_counter()
        alone = [
            train_models([p], digits, digits.train_targets, recipe, budget, record=record)[0]
            for p in plans()
        ]
        middle = time.perf_counter()
        group = train_models(plans(), digits, digits.train_targets, recipe, budget, record=record)
        report.update(alone_seconds=middle - start, group_seconds=time.perf_counter() - middle)
        accs = [(_test_accuracy(g, digits), _test_accuracy(a, digits)) for g, a in
                zip(group, alone, strict=True)]  # fmt: skip
    pairs = list(zip(group, alone, strict=True))
    gaps = [_gaps(g.dynamics, a.dynamics) for g, a in pairs]
    weights = [_weight_gap(g.module, a.module) for g, a in pairs]
    report.update(gaps=gaps, weight_gaps=weights, accuracy_group_alone=accs)
    for (g, a), gap, w, acc in zip(pairs, gaps, weights, accs, strict=True):
        assert g.steps == a.steps
        _check(gap, w, acc, dtype)


# --- clustering ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_pca():
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    x, _ = load_digits(return_X_y=True)
    return PCA(32, random_state=0).fit_transform(x).astype(np.float32)


def test_gpu_knn_and_kmeans_agree_with_the_cpu(digits_pca, report):
    import faiss

    from coreset_lab.clustering import knn
    from coreset_lab.clustering.backend import faiss_gpu_available, resolve_backend
    from coreset_lab.clustering.kmeans import run_kmeans
    from coreset_lab.clustering.knn import l2_normalize
    from coreset_lab.clustering.torch_kmeans import lloyd

    x = digits_pca
    auto = resolve_backend("auto")
    report.update(auto=auto.name, faiss_gpu=faiss_gpu_available())
    ref_idx, ref_sim = _faiss_cpu_knn(x, 10)
    for backend in ("auto", "torch"):
        idx, sim = knn(x, 10, backend=backend)
        report[f"knn_{backend}"] = {"index_agreement": float((idx == ref_idx).mean()),
                                    "max_sim_gap": float(np.abs(sim - ref_sim).max())}  # fmt: skip
    assert auto.gpu
    for backend in ("auto", "torch"):
        gap = report[f"knn_{backend}"]
        assert gap["index_agreement"] >= 0.999 and gap["max_sim_gap"] <= 1e-4, gap

    xn = l2_normalize(x)
    init = xn[np.random.default_rng(0).choice(len(xn), 10, replace=False)]
    km = faiss.Kmeans(xn.shape[1], 10, niter=20, spherical=True, max_points_per_centroid=10**6)
    km.train(xn, init_centroids=init.copy())
    _, ref = km.index.search(xn, 1)
    with full_precision():
        labels, _, _ = lloyd(torch.from_numpy(xn).cuda(), torch.from_numpy(init).cuda(), 20, True)
    report["lloyd_label_agreement"] = float((labels.cpu().numpy() == ref[:, 0]).mean())
    gpu = run_kmeans(x, 10, seed=0, backend="torch")
    cpu = _torch_kmeans_on_cpu(x)
    report.update(kmeans_backend=gpu[2]["backend"], kmeans_cpu_gpu_agreement=float(
        (gpu[0] == cpu[0]).mean()), objective_gpu=gpu[2]["objective"],
        objective_cpu=cpu[2]["objective"])  # fmt: skip
    assert report["lloyd_label_agreement"] >= 0.999
    assert gpu[2]["backend"] == "torch-cuda"
    assert abs(gpu[2]["objective"] / cpu[2]["objective"] - 1) <= 1e-4


def _faiss_cpu_knn(x, k):
    """faiss on the CPU even where faiss-gpu is installed (the reference)."""
    from coreset_lab.clustering import backend as backends
    from coreset_lab.clustering import knn

    old = backends.faiss_gpu_available
    backends.faiss_gpu_available = lambda: False
    try:
        return knn(x, k, backend="faiss")
    finally:
        backends.faiss_gpu_available = old


def _torch_kmeans_on_cpu(x):
    from coreset_lab.clustering import backend as backends
    from coreset_lab.clustering.kmeans import run_kmeans

    old = backends.cuda_available
    backends.cuda_available = lambda: False
    try:
        return run_kmeans(x, 10, seed=0, backend="torch")
    finally:
        backends.cuda_available = old


def test_gpu_knn_speed_at_100k(report):
    """Not a check of correctness: how long the GPU takes for 100k x 384 (k = 10)."""
    from coreset_lab.clustering import knn

    x = np.random.default_rng(0).standard_normal((100_000, 384), dtype=np.float32)
    knn(x[:2000], 10)  # CUDA context, kernels
    start = time.perf_counter()
    idx, _ = knn(x, 10)
    report["knn_100k_x_384_seconds"] = time.perf_counter() - start
    assert idx.shape == (100_000, 10)


# --- embeddings ------------------------------------------------------------------------------


def test_bf16_embedding_extraction_with_a_timm_vit(tmp_path, report):
    import timm

    from coreset_lab.embedding import compute_embeddings
    from coreset_lab.embedding.preprocess import pretrained_input
    from tests.datagen import make_cifar10

    make_cifar10(tmp_path, n_train=2048, n_test=16)
    data = build_dataset("cifar10", root=str(tmp_path))
    torch.manual_seed(0)
    vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval()
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    cfg = {"kind": "timm", "name": "vit_small_patch16_224", "weights": str(tmp_path / "vit.pth"),
           "image_size": 224, "batch_size": 256}  # fmt: skip
    compute_embeddings(cfg, build_dataset("cifar10", root=str(tmp_path), train_subset=256))
    torch.cuda.synchronize()
    start = time.perf_counter()
    z = compute_embeddings(cfg, data)  # bf16 autocast on CUDA
    report["images_per_second"] = len(z) / (time.perf_counter() - start)
    x = pretrained_input(data.train_eval.images[:128].cuda(), 224, data.mean, data.std)
    with torch.no_grad(), full_precision():
        ref = vit.cuda()(x).cpu().numpy()
    cos = (z[:128] * ref).sum(1) / (np.linalg.norm(z[:128], axis=1) * np.linalg.norm(ref, axis=1))
    report.update(min_cosine_to_fp32=float(cos.min()), shape=list(z.shape))
    assert z.shape == (2048, 384) and np.isfinite(z).all()
    assert cos.min() >= 0.99


# --- compile (last: its first compilation takes the longest) ---------------------------------


def test_compile_is_built_once_and_reused_across_folds_on_cuda(digits, report, monkeypatch):
    from torch._dynamo.utils import counters

    monkeypatch.setattr(steppers, "_COMPILED", {})
    torch._dynamo.reset()
    recipe = _recipe("fast", "bf16", compile=True)
    eager = dataclasses.replace(recipe, compile=False)
    sub, budget = np.arange(1000), Budget(epochs=2)
    graphs, seconds, fits = [], [], []
    for k in (0, 1):  # two folds of one architecture
        start = time.perf_counter()
        fits.append(train_classifier(_cnn(k), digits, digits.train_targets, recipe, budget,
                                     indices=sub, seed=k))  # fmt: skip
        seconds.append(time.perf_counter() - start)
        graphs.append(int(counters["stats"]["unique_graphs"]))
    plain = train_classifier(_cnn(1), digits, digits.train_targets, eager, budget, indices=sub,
                             seed=1)  # fmt: skip
    p_compiled = predict_probs(fits[1].module, digits.test)
    p_eager = predict_probs(plain.module, digits.test)
    gap = float(np.abs(p_compiled - p_eager).mean())
    report.update(seconds=seconds, unique_graphs=graphs, compiled=len(steppers._COMPILED),
                  mean_prob_gap_vs_eager=gap)  # fmt: skip
    assert len(steppers._COMPILED) == 1
    assert graphs[0] >= 1 and graphs[1] == graphs[0], graphs  # fold 2: no new graph
    assert gap <= 0.05
