"""Dataset loaders against real files (Fashion-MNIST, digits) and generated ones (the rest)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from coreset_lab.data import (
    DataBundle,
    FileImageSet,
    TensorImageSet,
    build_dataset,
    collate_batch,
    stratified_subset_indices,
)
from coreset_lab.data.base import channel_stats
from coreset_lab.errors import UserError
from tests.datagen import (
    make_cifar10,
    make_cifar100,
    make_fashion_mnist,
    make_image_folder,
    make_stl10,
)

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


def check_tensor_bundle(b: DataBundle, n_train: int, n_test: int, shape: tuple[int, ...]) -> None:
    for ds, n in ((b.train, n_train), (b.test, n_test)):
        assert isinstance(ds, TensorImageSet)
        assert ds.images.dtype == torch.uint8
        assert tuple(ds.images.shape) == (n, *shape)
        assert ds.targets.dtype == np.int64 and ds.targets.shape == (n,)
    assert b.train_eval is b.train
    assert b.in_channels == shape[0] and b.image_size == shape[1] == shape[2]
    assert len(b.mean) == len(b.std) == shape[0]


# --- digits -----------------------------------------------------------------------------------


def test_digits_split_is_fixed_stratified_and_deterministic():
    b = build_dataset("digits")
    check_tensor_bundle(b, 1347, 450, (1, 8, 8))
    assert b.num_classes == 10 and b.class_names == [str(d) for d in range(10)]
    assert b.augment.crop_pad == 1 and not b.augment.flip
    # Stratified: each class's share of the test split matches its share overall.
    all_counts = np.bincount(np.concatenate([b.train_targets, b.test_targets]), minlength=10)
    test_counts = np.bincount(b.test_targets, minlength=10)
    assert np.all(np.abs(test_counts - all_counts * 450 / 1797) <= 1)
    again = build_dataset("digits")
    assert torch.equal(again.train.images, b.train.images)
    assert np.array_equal(again.test_targets, b.test_targets)
    assert int(b.train.images.max()) == 255  # 0..16 stretched to the full uint8 range


def test_digits_mean_std_are_the_train_statistics():
    b = build_dataset("digits")
    assert channel_stats(b.train.images) == (b.mean, b.std)


# --- fashion-mnist ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fashion() -> DataBundle:
    if not FASHION_ROOT.is_dir():
        pytest.skip(f"{FASHION_ROOT} not installed (Debian package dataset-fashion-mnist)")
    return build_dataset("fashion_mnist")


def test_fashion_mnist_from_debian_files(fashion: DataBundle):
    check_tensor_bundle(fashion, 60000, 10000, (1, 28, 28))
    assert np.array_equal(np.bincount(fashion.train_targets), np.full(10, 6000))
    assert np.array_equal(np.bincount(fashion.test_targets), np.full(10, 1000))
    assert fashion.augment.crop_pad == 2 and fashion.augment.flip
    mean, std = channel_stats(fashion.train.images)
    assert mean == pytest.approx(fashion.mean, abs=1e-3)
    assert std == pytest.approx(fashion.std, abs=1e-3)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("torchvision_layout", [True, False])
def test_fashion_mnist_layouts_round_trip(tmp_path, compress, torchvision_layout):
    fake = make_fashion_mnist(tmp_path, compress=compress, torchvision_layout=torchvision_layout)
    b = build_dataset("fashion_mnist", root=str(tmp_path))
    check_tensor_bundle(b, 30, 10, (1, 28, 28))
    assert np.array_equal(b.train.images.numpy(), fake.train_images)
    assert np.array_equal(b.test_targets, fake.test_labels)


def test_fashion_mnist_truncated_file_is_a_user_error(tmp_path):
    make_fashion_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        build_dataset("fashion_mnist", root=str(tmp_path))


# --- cifar / stl-10 ---------------------------------------------------------------------------


def test_cifar10_round_trips_generated_batches(tmp_path):
    fake = make_cifar10(tmp_path, n_train=53, n_test=21)
    b = build_dataset("cifar10", root=str(tmp_path))
    check_tensor_bundle(b, 53, 21, (3, 32, 32))
    assert b.num_classes == 10 and b.class_names == fake.class_names
    assert b.augment.crop_pad == 4 and b.augment.flip
    for i in (0, 10, 11, 52):  # across the batch-file boundaries
        assert torch.equal(b.train[i][0], torch.from_numpy(fake.train_images[i]))
    assert np.array_equal(b.train.images.numpy(), fake.train_images)
    assert np.array_equal(b.train_targets, fake.train_labels)
    assert np.array_equal(b.test.images.numpy(), fake.test_images)
    assert np.array_equal(b.test_targets, fake.test_labels)


def test_cifar10_root_may_be_the_batches_folder_itself(tmp_path):
    fake = make_cifar10(tmp_path)
    b = build_dataset("cifar10", root=str(fake.folder))
    assert np.array_equal(b.train_targets, fake.train_labels)


def test_cifar100_round_trips_fine_labels(tmp_path):
    fake = make_cifar100(tmp_path)
    b = build_dataset("cifar100", root=str(tmp_path))
    check_tensor_bundle(b, 200, 100, (3, 32, 32))
    assert b.num_classes == 100 and b.class_names == fake.class_names
    assert np.array_equal(b.train.images.numpy(), fake.train_images)
    assert np.array_equal(b.train_targets, fake.train_labels)
    assert np.array_equal(b.test_targets, fake.test_labels)


def test_stl10_round_trips_column_major_images(tmp_path):
    fake = make_stl10(tmp_path)
    b = build_dataset("stl10", root=str(tmp_path))
    check_tensor_bundle(b, 20, 10, (3, 96, 96))
    assert np.array_equal(b.train.images.numpy(), fake.train_images)
    assert np.array_equal(b.train_targets, fake.train_labels)  # stored 1..10, read 0..9
    assert np.array_equal(b.test.images.numpy(), fake.test_images)
    assert b.class_names == fake.class_names
    assert channel_stats(b.train.images) == (b.mean, b.std)


# --- image folders ----------------------------------------------------------------------------


def test_imagenet_from_image_folder(tmp_path):
    wnids = make_image_folder(tmp_path, classes=3, per_class=4, size=40)
    b = build_dataset("imagenet", root=str(tmp_path))
    assert b.class_names == sorted(wnids) and b.num_classes == 3
    assert isinstance(b.train, FileImageSet) and isinstance(b.train_eval, FileImageSet)
    assert np.array_equal(b.train_targets, np.repeat(np.arange(3), 4))
    assert np.array_equal(b.test_targets, np.repeat(np.arange(3), 4))
    assert b.train.samples == b.train_eval.samples  # same split, same order
    assert b.augment.crop_pad == 0 and not b.augment.flip
    x, i = b.train[5]
    assert x.dtype == torch.float32 and tuple(x.shape) == (3, 224, 224) and i == 5
    e1, _ = b.train_eval[5]
    e2, _ = b.train_eval[5]
    assert tuple(e1.shape) == (3, 224, 224) and torch.equal(e1, e2)
    t, j = b.test[11]
    assert tuple(t.shape) == (3, 224, 224) and j == 11
    # DataLoader workers receive the set pickled.
    assert torch.equal(pickle.loads(pickle.dumps(b.train_eval))[5][0], e1)


def test_image_folder_options_and_wrapped_index(tmp_path):
    make_image_folder(tmp_path, classes=2, per_class=3, splits=("fit", "holdout"), ext="jpg")
    b = build_dataset(
        "image_folder", root=str(tmp_path), image_size=32, train_dir="fit", test_dir="holdout"
    )
    assert b.image_size == 32 and len(b.train) == 6 and len(b.test) == 6
    x, i = b.train_eval[6 + 4]  # i >= N: sample 4, raw index back
    assert i == 10 and torch.equal(x, b.train_eval[4][0]) and tuple(x.shape) == (3, 32, 32)
    xs, idx = next(iter(DataLoader(b.train_eval, batch_size=4, collate_fn=collate_batch)))
    assert tuple(xs.shape) == (4, 3, 32, 32) and idx.tolist() == [0, 1, 2, 3]


# --- batched fetch ----------------------------------------------------------------------------


def test_getitems_wraps_images_but_keeps_raw_indices():
    b = build_dataset("digits")
    n = len(b.train)
    images, idx = b.train.__getitems__([0, 5, n + 5, 2 * n - 1])
    assert idx.dtype == torch.int64 and idx.tolist() == [0, 5, n + 5, 2 * n - 1]
    assert torch.equal(images[1], images[2]) and torch.equal(images[3], b.train.images[n - 1])
    x, i = b.train[n + 3]
    assert i == n + 3 and torch.equal(x, b.train.images[3])


def test_dataloader_uses_batched_fetch_and_collate_batch():
    b = build_dataset("digits")
    loader = DataLoader(b.train, batch_size=64, shuffle=False, collate_fn=collate_batch)
    images, idx = next(iter(loader))
    assert images.dtype == torch.uint8 and tuple(images.shape) == (64, 1, 8, 8)
    assert torch.equal(images, b.train.images[:64]) and idx.tolist() == list(range(64))
    # Item lists (no __getitems__ path) collate to the same thing.
    stacked, idx2 = collate_batch([b.train[i] for i in range(64)])
    assert torch.equal(stacked, images) and torch.equal(idx2, idx)


# --- subsets ----------------------------------------------------------------------------------


def test_stratified_subset_counts_and_determinism():
    targets = np.repeat(np.arange(4), [100, 50, 30, 20])
    idx = stratified_subset_indices(targets, 40, seed=3)
    assert len(idx) == 40 and np.all(np.diff(idx) > 0)
    assert np.bincount(targets[idx]).tolist() == [20, 10, 6, 4]
    assert np.array_equal(idx, stratified_subset_indices(targets, 40, seed=3))
    assert not np.array_equal(idx, stratified_subset_indices(targets, 40, seed=4))
    assert len(stratified_subset_indices(targets, 1000)) == 200  # larger than N: everything


def test_build_dataset_subsets(tmp_path):
    b = build_dataset("digits", train_subset=200, test_subset=50, subset_seed=1)
    assert len(b.train) == 200 and len(b.test) == 50 and b.train_eval is b.train
    assert np.all(np.abs(np.bincount(b.train_targets, minlength=10) - 20) <= 1)
    full = build_dataset("digits")
    assert torch.equal(b.train.images, full.train.images[b.train_source_indices])
    assert np.array_equal(b.test_targets, full.test_targets[b.test_source_indices])
    again = build_dataset("digits", train_subset=200, test_subset=50, subset_seed=1)
    assert np.array_equal(again.train_source_indices, b.train_source_indices)
    # File-backed sets: train and train_eval keep the same samples.
    make_image_folder(tmp_path, classes=3, per_class=4)
    f = build_dataset("imagenet", root=str(tmp_path), train_subset=6)
    assert f.train.samples == f.train_eval.samples and len(f.train) == 6
    assert np.bincount(f.train_targets).tolist() == [2, 2, 2]


def test_subset_size_must_be_positive():
    with pytest.raises(UserError, match="train_subset"):
        build_dataset("digits", train_subset=0)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "stl10", "fashion_mnist", "imagenet"])
def test_missing_dir_names_the_path_and_the_fix(tmp_path, name):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as e:
        build_dataset(name, root=str(missing))
    assert str(missing) in str(e.value) and "dataset.root" in str(e.value)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "stl10", "fashion_mnist", "imagenet"])
def test_empty_dir_is_a_user_error(tmp_path, name):
    with pytest.raises(UserError, match=str(tmp_path)):
        build_dataset(name, root=str(tmp_path))


def test_incomplete_cifar_folder_names_the_missing_file(tmp_path):
    fake = make_cifar10(tmp_path)
    (fake.folder / "data_batch_3").unlink()
    with pytest.raises(UserError, match="data_batch_3"):
        build_dataset("cifar10", root=str(tmp_path))


def test_corrupt_cifar_batch_is_a_user_error(tmp_path):
    fake = make_cifar10(tmp_path)
    (fake.folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="test_batch"):
        build_dataset("cifar10", root=str(tmp_path))


def test_image_folder_with_one_class(tmp_path):
    make_image_folder(tmp_path, classes=1)
    with pytest.raises(UserError, match="at least 2"):
        build_dataset("imagenet", root=str(tmp_path))


def test_image_folder_without_val(tmp_path):
    make_image_folder(tmp_path, splits=("train",))
    with pytest.raises(UserError, match="'val'"):
        build_dataset("imagenet", root=str(tmp_path))


def test_image_folder_with_an_empty_class(tmp_path):
    make_image_folder(tmp_path, classes=2)
    (tmp_path / "train" / "n_empty").mkdir()
    with pytest.raises(UserError, match="n_empty"):
        build_dataset("imagenet", root=str(tmp_path))


def test_unknown_dataset_and_option():
    with pytest.raises(UserError, match="unknown dataset 'mnist'.*cifar10"):
        build_dataset("mnist")
    with pytest.raises(UserError, match="dataset.image_size"):
        build_dataset("digits", image_size=32)


def test_dataset_name_aliases(tmp_path):
    make_cifar10(tmp_path)
    assert build_dataset("CIFAR-10", root=str(tmp_path)).name == "cifar10"
    assert build_dataset("Digits").name == "digits"
