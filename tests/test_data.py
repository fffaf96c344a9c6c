"""Tests for lowrank_utils.data on fixtures written here in each dataset's real on-disk format."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import urllib.error
import urllib.request
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Subset, TensorDataset
from torchvision import transforms
from torchvision.datasets.vision import VisionDataset

from lowrank_utils import data
from lowrank_utils.data import (
    DatasetUnavailable,
    data_root,
    dataset_info,
    load_dataset,
    make_loaders,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

# ------------------------------------------------------------------------------------------------------------------
# Writers for the published formats


class _Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 ``str``, which is how the published CIFAR batches were written."""

    # typeshed types dispatch with Unpickler and leaves out write and memoize: pure-Python pickle internals.
    dispatch: ClassVar[dict[type, Callable[..., None]]] = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        internals: Any = self
        if len(obj) < 256:
            internals.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            internals.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        internals.memoize(obj)

    dispatch[bytes] = save_py2_str


def _write_py2_pickle(path: Path, obj: object) -> None:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())


def _cifar_images(n: int, seed: int) -> np.ndarray:
    """n rows of 3072 bytes (1024 R, 1024 G, 1024 B, each row-major); image 0 is a known pattern."""
    images = np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    images[0, 0] = 255  # red plane constant
    images[0, 1] = np.arange(32, dtype=np.uint8)[:, None] * 8  # green grows down the rows
    images[0, 2] = np.arange(32, dtype=np.uint8)[None, :] * 8  # blue grows along the columns
    return images.reshape(n, 3072)


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar10")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        _write_py2_pickle(
            folder / f"data_batch_{b}",
            {
                b"batch_label": f"training batch {b} of 5".encode(),
                b"labels": [(i + b) % 10 for i in range(10)],
                b"data": _cifar_images(10, seed=b),
                b"filenames": [f"img_{b}_{i}.png".encode() for i in range(10)],
            },
        )
    _write_py2_pickle(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": list(range(10)),
            b"data": _cifar_images(10, seed=0),
            b"filenames": [f"test_{i}.png".encode() for i in range(10)],
        },
    )
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _write_py2_pickle(folder / "batches.meta", {b"num_cases_per_batch": 10, b"label_names": names, b"num_vis": 3072})
    return root


@pytest.fixture(scope="module")
def cifar100_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cifar100")
    folder = root / "cifar-100-python"
    folder.mkdir()
    for name, n, seed in (("train", 20, 1), ("test", 10, 0)):
        fine = [(7 * i) % 100 for i in range(n)]
        _write_py2_pickle(
            folder / name,
            {
                b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
                b"batch_label": f"{name} batch 1 of 1".encode(),
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": _cifar_images(n, seed=seed),
            },
        )
    _write_py2_pickle(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return root


def _write_idx(directory: Path, prefix: str, n: int, compress: bool) -> None:
    images = np.random.default_rng(n).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0] = 255
    labels = (np.arange(n) % 10).astype(np.uint8)
    image_bytes = struct.pack(">IIII", 0x00000803, n, 28, 28) + images.tobytes()
    label_bytes = struct.pack(">II", 0x00000801, n) + labels.tobytes()
    for name, payload in ((f"{prefix}-images-idx3-ubyte", image_bytes), (f"{prefix}-labels-idx1-ubyte", label_bytes)):
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)


def _fashion_dir(directory: Path, compress: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _write_idx(directory, "train", 20, compress)
    _write_idx(directory, "t10k", 10, compress)
    return directory


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("imagenet_tree")
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 1)):
        for cls in ("n01440764", "n01443537"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{cls}_{i}.png")
    return root


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every URL fetch fail the way it does without a network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _types(ds: object) -> list[type]:
    return [type(t) for t in ds.transform.transforms]  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------------------------
# Data root, names, info


def test_data_root_reads_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOWRANK_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.setenv("LOWRANK_DATA", "")
    assert data_root() == Path("~/.cache/lowrank_course").expanduser()
    monkeypatch.delenv("LOWRANK_DATA")
    assert data_root() == Path("~/.cache/lowrank_course").expanduser()


def test_load_dataset_defaults_to_env_root(monkeypatch: pytest.MonkeyPatch, cifar10_root: Path) -> None:
    monkeypatch.setenv("LOWRANK_DATA", str(cifar10_root))
    assert len(load_dataset("cifar10", "test", download=False)) == 10


def test_names_info_and_bad_arguments() -> None:
    assert data.DATASETS == ("cifar10", "cifar100", "fashion_mnist", "digits", "imagenet")
    assert dataset_info("CIFAR-10") is dataset_info("cifar10")
    assert dataset_info("Fashion-MNIST").num_classes == 10
    info = dataset_info("cifar100")
    assert (info.num_classes, info.channels, info.image_size, len(info.mean), len(info.std)) == (100, 3, 32, 3, 3)
    assert dataset_info("imagenet").num_classes == 1000
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        dataset_info("mnist")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_dataset("digits", "validation")  # type: ignore[arg-type]  # a wrong split on purpose
    with pytest.raises(ValueError, match="only ImageNet"):
        load_dataset("cifar10", image_size=64)
    with pytest.raises(ValueError, match="positive"):
        load_dataset("digits", subset=0)


# ------------------------------------------------------------------------------------------------------------------
# CIFAR


def test_cifar10_reads_pickle_batches(cifar10_root: Path) -> None:
    train = load_dataset("cifar10", "train", root=cifar10_root, download=False)
    test = load_dataset("cifar10", "test", root=cifar10_root, download=False)
    assert (len(train), len(test)) == (50, 10)
    assert isinstance(train, VisionDataset)
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    assert [test[i][1] for i in range(10)] == list(range(10))
    assert train[3][1] == (3 + 1) % 10

    image, _ = test[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    info = dataset_info("cifar10")
    mean, std = torch.tensor(info.mean), torch.tensor(info.std)
    # Undoing the normalisation must give back the exact bytes, in the CHW layout of the pickles.
    pixels = (image * std[:, None, None] + mean[:, None, None]) * 255
    expected = torch.from_numpy(_cifar_images(1, seed=0).reshape(3, 32, 32).astype(np.float32))
    torch.testing.assert_close(pixels, expected, atol=1e-3, rtol=0)
    assert torch.allclose(image[0], (1.0 - mean[0]) / std[0])


def test_cifar_augmentation(cifar10_root: Path) -> None:
    train = load_dataset("cifar10", "train", root=cifar10_root, augment=True, download=False)
    assert isinstance(train, VisionDataset)
    steps = train.transform.transforms
    assert [type(t) for t in steps] == [
        transforms.RandomCrop,
        transforms.RandomHorizontalFlip,
        transforms.ToTensor,
        transforms.Normalize,
    ]
    assert steps[0].size == (32, 32) and steps[0].padding == 4
    assert steps[3].mean == dataset_info("cifar10").mean
    plain = load_dataset("cifar10", "train", root=cifar10_root, download=False)[0][0]
    torch.manual_seed(0)
    draws = [train[0][0] for _ in range(10)]
    assert all(d.shape == (3, 32, 32) for d in draws)
    assert any(not torch.equal(d, plain) for d in draws)
    # Test images are never augmented, even when asked.
    test = load_dataset("cifar10", "test", root=cifar10_root, augment=True, download=False)
    assert _types(test) == [transforms.ToTensor, transforms.Normalize]


def test_cifar100_reads_pickles(cifar100_root: Path) -> None:
    train = load_dataset("cifar100", "train", root=cifar100_root, download=False)
    test = load_dataset("cifar-100", "test", root=cifar100_root, augment=True, download=False)
    assert (len(train), len(test)) == (20, 10)
    assert isinstance(train, VisionDataset)
    assert len(train.classes) == 100 and train.classes[3] == "fine3"
    assert [train[i][1] for i in range(5)] == [0, 7, 14, 21, 28]
    image = test[0][0]
    assert image.shape == (3, 32, 32)
    mean, std = dataset_info("cifar100").mean, dataset_info("cifar100").std
    assert torch.allclose(image[0], torch.tensor((1.0 - mean[0]) / std[0]))


@pytest.mark.parametrize("name, folder", [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_cifar_missing_without_download(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, root=tmp_path, download=False)
    message = str(err.value)
    assert str(tmp_path / folder) in message
    assert "download=False" in message and "LOWRANK_DATA" in message
    assert "python.tar.gz" in message and "https://www.cs.toronto.edu/~kriz/" in message


@pytest.mark.parametrize(
    "name, url",
    [
        ("cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
        ("cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    ],
)
def test_cifar_offline_download(tmp_path: Path, offline: None, name: str, url: str) -> None:
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset(name, root=tmp_path / "root", download=True)
    message = str(err.value)
    assert f"Download of {url} failed" in message and "name resolution" in message
    assert str(tmp_path / "root") in message and "extract it" in message


def test_cifar_corrupt_file(tmp_path: Path, cifar10_root: Path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(cifar10_root, root)
    batch = root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetUnavailable, match="unreadable"):
        load_dataset("cifar10", "test", root=root, download=False)


# ------------------------------------------------------------------------------------------------------------------
# Fashion-MNIST

_FASHION_CASES = ["system-dir-gz", "data-root-plain", "raw-folder"] + (["debian"] if DEBIAN_FASHION.is_dir() else [])


@pytest.mark.parametrize("source", _FASHION_CASES)
def test_fashion_mnist_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str) -> None:
    root = tmp_path / "root"
    sizes = (20, 10)
    if source == "debian":
        assert DEBIAN_FASHION in data.FASHION_MNIST_SYSTEM_DIRS  # the default list covers Debian's package
        sizes = (60_000, 10_000)
    else:
        monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIRS", (tmp_path / "system",))
        if source == "system-dir-gz":
            _fashion_dir(tmp_path / "system")
        elif source == "data-root-plain":
            _fashion_dir(root / "fashion-mnist", compress=False)
        else:
            _fashion_dir(root / "FashionMNIST" / "raw")
    train = load_dataset("fashion_mnist", "train", root=root, download=False)
    test = load_dataset("fashion-mnist", "test", root=root, download=False)
    assert (len(train), len(test)) == sizes
    # torchvision reads the decompressed IDX files from its own raw folder under the data root.
    assert all((root / "FashionMNIST" / "raw" / name).is_file() for name in data._FASHION_FILES)
    image, label = test[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0 <= label < 10 and 0 <= train[len(train) - 1][1] < 10
    if source != "debian":
        info = dataset_info("fashion_mnist")
        assert torch.allclose(image, torch.tensor((1.0 - info.mean[0]) / info.std[0]))
        assert [test[i][1] for i in range(10)] == list(range(10))


def test_fashion_mnist_augmentation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIRS", (_fashion_dir(tmp_path / "system"),))
    train = load_dataset("fashion_mnist", "train", root=tmp_path, augment=True, download=False)
    assert isinstance(train, VisionDataset)
    steps = train.transform.transforms
    assert [type(t) for t in steps] == [transforms.RandomCrop, transforms.ToTensor, transforms.Normalize]
    assert steps[0].size == (28, 28) and steps[0].padding == 2
    assert train[0][0].shape == (1, 28, 28)


@pytest.mark.parametrize("download", [False, True])
def test_fashion_mnist_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: None, download: bool
) -> None:
    nowhere = tmp_path / "nowhere"
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIRS", (nowhere,))
    root = tmp_path / "root"
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("fashion_mnist", root=root, download=download)
    message = str(err.value)
    for place in (root / "FashionMNIST" / "raw", root / "fashion-mnist", nowhere):
        assert str(place) in message
    assert "apt-get install dataset-fashion-mnist" in message and "LOWRANK_DATA" in message
    if download:
        assert "fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz" in message
        assert "failed" in message
    else:
        assert "download=False" in message


# ------------------------------------------------------------------------------------------------------------------
# Digits


def test_digits_split_is_deterministic_and_stratified() -> None:
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    info = dataset_info("digits")
    assert (len(train), len(test)) == (info.train_size, info.test_size) == (1352, 445)
    assert isinstance(train, TensorDataset) and isinstance(test, TensorDataset)
    x, y = train.tensors
    assert x.shape == (1352, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05
    assert torch.bincount(test.tensors[1]).min() >= 43
    again = load_dataset("digits", "test")
    assert isinstance(again, TensorDataset) and torch.equal(again.tensors[0], test.tensors[0])


# ------------------------------------------------------------------------------------------------------------------
# ImageNet


def test_imagenet_folder(imagenet_root: Path) -> None:
    train = load_dataset("imagenet", "train", root=imagenet_root, augment=True, image_size=8)
    val = load_dataset("imagenet", "val", root=imagenet_root, image_size=8)
    assert (len(train), len(val)) == (6, 2)
    assert isinstance(train, VisionDataset) and isinstance(val, VisionDataset)
    assert train.classes == ["n01440764", "n01443537"] == val.classes
    assert train[0][0].shape == (3, 8, 8) and val[1][0].shape == (3, 8, 8)
    assert (train[5][1], val[1][1]) == (1, 1)
    assert _types(train)[:2] == [transforms.RandomResizedCrop, transforms.RandomHorizontalFlip]
    assert isinstance(val, VisionDataset)
    steps = val.transform.transforms
    assert [type(t) for t in steps[:2]] == [transforms.Resize, transforms.CenterCrop]
    assert steps[0].size == 9 and steps[1].size == (8, 8)  # 256/224 of the crop, as in the full-size recipe
    full = load_dataset("imagenet", "val", root=imagenet_root)
    assert full[0][0].shape == (3, 224, 224)


def test_imagenet_under_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, imagenet_root: Path) -> None:
    (tmp_path / "imagenet").symlink_to(imagenet_root, target_is_directory=True)
    monkeypatch.setenv("LOWRANK_DATA", str(tmp_path))
    assert len(load_dataset("imagenet", "test", image_size=8)) == 2


def test_imagenet_missing_and_mismatched(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as err:
        load_dataset("imagenet", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and str(tmp_path / "imagenet") in message
    assert "image-net.org" in message and "root=" in message
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "val" / "b").mkdir(parents=True)
    with pytest.raises(DatasetUnavailable, match="different class folders"):
        load_dataset("imagenet", root=tmp_path)


# ------------------------------------------------------------------------------------------------------------------
# Subsets and loaders


def test_subset_is_class_balanced_and_deterministic(cifar10_root: Path) -> None:
    small = load_dataset("digits", "train", subset=25)
    labels = [small[i][1].item() for i in range(len(small))]
    assert len(small) == 25 and sorted(set(labels)) == list(range(10))
    assert max(labels.count(c) for c in range(10)) - min(labels.count(c) for c in range(10)) <= 1
    again = load_dataset("digits", "train", subset=25)
    assert isinstance(small, Subset) and isinstance(again, Subset) and small.indices == again.indices
    assert len(load_dataset("digits", "test", subset=10_000)) == 445
    cifar = load_dataset("cifar10", "train", root=cifar10_root, download=False, subset=10)
    assert sorted(cifar[i][1] for i in range(10)) == list(range(10))


def test_make_loaders(cifar10_root: Path) -> None:
    train, test = make_loaders("digits", batch_size=32, subset=100, test_subset=50, seed=3)
    assert isinstance(train.dataset, Sized) and isinstance(test.dataset, Sized)
    assert (len(train.dataset), len(test.dataset)) == (100, 50)
    x, y = next(iter(train))
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    again, _ = make_loaders("digits", batch_size=32, subset=100, test_subset=50, seed=3)
    assert torch.equal(next(iter(again))[1], y)
    first_test = [label for _, labels in test for label in labels.tolist()]
    assert first_test == [label for _, labels in test for label in labels.tolist()]  # test order is fixed

    train, test = make_loaders("cifar10", batch_size=4, root=cifar10_root, augment=True, download=False, subset=20)
    x, y = next(iter(train))
    assert isinstance(test.dataset, Sized)
    assert x.shape == (4, 3, 32, 32) and len(test.dataset) == 10
