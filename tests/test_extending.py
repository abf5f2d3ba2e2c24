"""Adding a scorer, a selector, a protocol and a dataset takes two files each: a module in its
package (the class registers where it is defined) and a config in its group. The test adds a toy
of each to a copy of the package, counts the files that differ from the original, and runs the
four together end to end."""

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

import coreset_lab
from tests.conftest import subprocess_env

PACKAGE = Path(coreset_lab.__file__).parent

TOYS = {
    "scoring/toy.py": '''
import numpy as np
from coreset_lab.registry import register
from coreset_lab.scoring.base import Scorer

@register("scorer")
class Parity(Scorer):
    """Odd indices are hard: reads nothing but N."""
    name = "toy_parity"
    needs = frozenset()

    def __call__(self, inputs):
        return (np.arange(inputs.num_samples) % 2).astype(np.float64)
''',
    "conf/scorer/toy_parity.yaml": "_target_: coreset_lab.scoring.toy.Parity\n",
    "selection/toy.py": '''
import numpy as np
from coreset_lab.registry import register
from coreset_lab.selection.budget import Selector

@register("selector")
class Hardest(Selector):
    """The k highest scores, ties by index."""
    name = "toy_hardest"

    def select(self, scores, labels, k, rng):
        return np.argsort(-scores, kind="stable")[:k]
''',
    "conf/selector/toy_hardest.yaml": (
        "_target_: coreset_lab.selection.toy.Hardest\nprune_rate: 0.5\n"
    ),
    "protocols/toy.py": '''
import numpy as np
from coreset_lab.protocols.base import Protocol, Selection
from coreset_lab.registry import register
from coreset_lab.scoring.base import ScoreInputs

@register("protocol")
class Blind(Protocol):
    """Scores without training anything; reads no label to choose."""
    name = "toy_blind"

    def label_reader(self, scorer, selector):
        return None

    def __call__(self, ctx, scorer, selector):
        scores = np.asarray(scorer(ScoreInputs(labels=None, size=len(ctx.data.train))))
        coreset = selector(scores, None, np.random.default_rng(ctx.seed))
        return Selection(coreset=coreset, scores=scores)
''',
    "conf/protocol/toy_blind.yaml": "_target_: coreset_lab.protocols.toy.Blind\n",
    "data/toy.py": '''
import numpy as np
import torch
from coreset_lab.data.base import Augment, DataBundle, TensorImageSet
from coreset_lab.registry import register

@register("dataset", "toy_blobs")
def build_toy_blobs(root=None, download=False, n_train: int = 120):
    """Two classes of 8x8 grey images: dark and bright noise."""
    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 2
        x = rng.integers(0, 128, (n, 1, 8, 8)) + 127 * y[:, None, None, None]
        return TensorImageSet(torch.from_numpy(x.astype(np.uint8)), y)

    train = split(n_train)
    return DataBundle("toy_blobs", train, train, split(60), 2, 1, 8, (0.5,), (0.3,), Augment())
''',
    "conf/dataset/toy_blobs.yaml": "name: toy_blobs\nroot: null\nn_train: 120\n",
}


def _changed(a: Path, b: Path) -> list[str]:
    """Files of tree `b` that tree `a` lacks or holds with other contents."""
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    out = [str((b / n).relative_to(b)) for n in cmp.right_only + cmp.diff_files]
    for sub in cmp.common_dirs:
        out += [f"{sub}/{f}" for f in _changed(a / sub, b / sub)]
    return sorted(out)


def test_a_toy_scorer_selector_protocol_and_dataset_take_two_files_each(tmp_path):
    copy = tmp_path / "src" / "coreset_lab"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in TOYS.items():
        (copy / name).write_text(text.lstrip())
    assert _changed(PACKAGE, copy) == sorted(TOYS)  # 8 files: 2 per kind, nothing else edited

    out = tmp_path / "run"
    args = ["dataset=toy_blobs", "scorer=toy_parity", "selector=toy_hardest"]
    args += ["protocol=toy_blind", "trainer=debug", "trainer.target_iterations=5", "logger=none"]
    env = {**subprocess_env(), "PYTHONPATH": str(copy.parent)}
    r = subprocess.run(
        [sys.executable, "-m", "coreset_lab", *args, f"hydra.run.dir={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((out / "results.json").read_text())
    assert result["method"] == "toy_blind:toy_hardest(toy_parity)"  # the derived label
    assert result["coreset_size"] == 60 and result["test_accuracy"] is not None
    kept = [int(line.split(",")[0]) for line in (out / "coreset.csv").read_text().split()[1:]]
    assert kept == list(range(1, 120, 2))  # the odd ("hard") indices
