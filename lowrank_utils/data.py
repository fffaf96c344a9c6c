"""Datasets for the course: CIFAR-10/100, Fashion-MNIST, scikit-learn digits and ImageNet, read from disk in their
published formats (downloaded when possible) with the standard augmentations and one data root."""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

# torchvision is imported where a dataset or transform is built, not here: importing it costs seconds (it pulls in
# torch's compiler stack), and most chapters import the package without ever loading an image dataset.
if TYPE_CHECKING:
    from torchvision.datasets.vision import VisionDataset

__all__ = [
    "DATA_ENV",
    "DATASETS",
    "FASHION_MNIST_SYSTEM_DIRS",
    "DatasetInfo",
    "DatasetUnavailable",
    "data_root",
    "dataset_info",
    "load_dataset",
    "make_loaders",
]

DATA_ENV = "LOWRANK_DATA"
"""Environment variable naming the directory every dataset is read from and downloaded into."""

DEFAULT_DATA_ROOT = "~/.cache/lowrank_course"

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "digits", "imagenet")
"""Names accepted by :func:`load_dataset` (case, ``-`` and ``_`` are ignored: ``"CIFAR-10"`` works too)."""

_DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_SYSTEM_DIRS: tuple[Path, ...] = (_DEBIAN_FASHION_MNIST,)
"""System directories searched for Fashion-MNIST's IDX files (Debian's ``dataset-fashion-mnist`` installs the first)."""

Split = Literal["train", "test", "val"]
# What load_dataset returns: every one has a length, which torch's Dataset type does not promise.
SizedDataset: TypeAlias = "Subset | TensorDataset | VisionDataset"


class DatasetUnavailable(RuntimeError):
    """A dataset is neither on disk nor downloadable; the message says where it looked and how to provide it."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: classes, image shape, normalisation statistics and split sizes."""

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    test_size: int


# Per-channel statistics of the training images scaled to [0, 1] (std is the true pixel std, not the 0.2023... values
# that circulate in old CIFAR code). Digits' values are over all 1797 images, grey levels divided by 16.
_INFO = {
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 50_000, 10_000),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 50_000, 10_000),
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, 1, 28, (0.2860,), (0.3530,), 60_000, 10_000),
    "digits": DatasetInfo("digits", 10, 1, 8, (0.3053,), (0.3760,), 1_352, 445),
    "imagenet": DatasetInfo(
        "imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1_281_167, 50_000
    ),
}

_FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def data_root() -> Path:
    """The directory datasets live in: ``$LOWRANK_DATA`` if set, else ``~/.cache/lowrank_course``."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT).expanduser()


def dataset_info(name: str) -> DatasetInfo:
    """Number of classes, channels, image size, mean/std and split sizes of a dataset in :data:`DATASETS`."""
    return _INFO[_canonical(name)]


def load_dataset(
    name: str,
    split: Split = "train",
    root: str | os.PathLike[str] | None = None,
    augment: bool = False,
    download: bool = True,
    subset: int | None = None,
    image_size: int | None = None,
) -> SizedDataset:
    """One split of a dataset as ``(image tensor, label)`` pairs, normalised, optionally augmented and subsampled
    (a ``Subset``, ``TensorDataset`` or torchvision ``VisionDataset``: each has a length)."""
    key = _canonical(name)
    train = _is_train(split)
    info = _INFO[key]
    if image_size is not None and key != "imagenet" and image_size != info.image_size:
        raise ValueError(
            f"image_size={image_size} was asked of {key}, whose images are {info.image_size}x{info.image_size}; "
            "only ImageNet is resized. Leave image_size=None for this dataset."
        )
    base = Path(root).expanduser() if root is not None else data_root()
    # Augmentation is for training only: evaluating on randomly cropped test images would just add noise.
    augment = augment and train
    if key == "digits":
        ds: SizedDataset = _load_digits(train)
    elif key == "imagenet":
        ds = _load_imagenet(base, train, _imagenet_transform(augment, image_size or info.image_size, info))
    elif key == "fashion_mnist":
        ds = _load_fashion_mnist(base, train, _small_image_transform(info, augment, pad=2, flip=False), download)
    else:
        ds = _load_cifar(key, base, train, _small_image_transform(info, augment, pad=4, flip=True), download)
    return _take_subset(ds, subset)


def make_loaders(
    name: str,
    batch_size: int,
    *,
    root: str | os.PathLike[str] | None = None,
    augment: bool = False,
    download: bool = True,
    num_workers: int = 0,
    subset: int | None = None,
    test_subset: int | None = None,
    image_size: int | None = None,
    test_batch_size: int | None = None,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """Train and test DataLoaders (train shuffled with a seeded generator); ``test_subset`` defaults to ``subset``."""
    common: dict[str, Any] = dict(root=root, download=download, image_size=image_size)
    train_set = load_dataset(name, "train", augment=augment, subset=subset, **common)
    test_set = load_dataset(name, "test", subset=test_subset if test_subset is not None else subset, **common)
    # Pinned host memory only pays off when batches are copied to a GPU.
    pin = torch.cuda.is_available()
    # A seeded generator makes the shuffling order (and the workers' augmentation seeds) reproducible run to run.
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, num_workers=num_workers, pin_memory=pin, generator=generator
    )
    test_loader = DataLoader(
        test_set, batch_size=test_batch_size or batch_size, shuffle=False, num_workers=num_workers, pin_memory=pin
    )
    return train_loader, test_loader


# --------------------------------------------------------------------------------------------------------------------
# Names, splits, transforms


def _canonical(name: str) -> str:
    squashed = name.lower().replace("-", "").replace("_", "")
    for key in DATASETS:
        if key.replace("_", "") == squashed:
            return key
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")


def _is_train(split: str) -> bool:
    if split == "train":
        return True
    if split in ("test", "val"):
        return False
    raise ValueError(f"split must be 'train' or 'test' ('val' is accepted as 'test'), not {split!r}.")


def _small_image_transform(info: DatasetInfo, augment: bool, pad: int, flip: bool) -> Callable[[Any], torch.Tensor]:
    from torchvision import transforms

    steps: list[Callable[[Any], Any]] = []
    if augment:
        steps.append(transforms.RandomCrop(info.image_size, padding=pad))
        if flip:
            steps.append(transforms.RandomHorizontalFlip())
    steps += [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    return transforms.Compose(steps)


def _imagenet_transform(augment: bool, size: int, info: DatasetInfo) -> Callable[[Any], torch.Tensor]:
    from torchvision import transforms

    if augment:
        steps: list[Callable[[Any], Any]] = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()]
    else:
        # The usual 256 -> 224 evaluation crop, scaled so that tiny test images keep the same proportions.
        steps = [transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)]
    steps += [transforms.ToTensor(), transforms.Normalize(info.mean, info.std)]
    return transforms.Compose(steps)


# --------------------------------------------------------------------------------------------------------------------
# Subsets


def _targets(ds: Dataset) -> list[int] | None:
    if isinstance(ds, TensorDataset):
        return ds.tensors[1].tolist()
    targets = getattr(ds, "targets", None)
    return None if targets is None else torch.as_tensor(targets).tolist()


def _take_subset(ds: SizedDataset, n: int | None) -> SizedDataset:
    if n is None:
        return ds
    if n <= 0:
        raise ValueError(f"subset must be a positive number of examples, not {n}.")
    size = len(ds)
    if n >= size:
        return ds
    targets = _targets(ds)
    if targets is None:
        return Subset(ds, range(n))
    # Round-robin over classes, earliest examples first: deterministic and as class-balanced as n allows.
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        by_class.setdefault(label, []).append(index)
    picked: list[int] = []
    rank = 0
    while len(picked) < n:
        for label in sorted(by_class):
            if rank < len(by_class[label]):
                picked.append(by_class[label][rank])
                if len(picked) == n:
                    break
        rank += 1
    return Subset(ds, sorted(picked))


# --------------------------------------------------------------------------------------------------------------------
# Digits (bundled with scikit-learn)


def _load_digits(train: bool) -> TensorDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    info = _INFO["digits"]
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = (images - info.mean[0]) / info.std[0]
    labels = torch.tensor(bunch.target, dtype=torch.long)
    # Every fourth image of each class is a test image: stratified, and independent of any RNG or library version.
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        is_test[torch.nonzero(labels == label).flatten()[3::4]] = True
    keep = ~is_test if train else is_test
    return TensorDataset(images[keep], labels[keep])


# --------------------------------------------------------------------------------------------------------------------
# CIFAR


class _PresenceCheckedCIFAR:
    """Mixin: accept CIFAR pickles that are present and parse, instead of requiring their published md5 sums."""

    # torchvision checks each batch file's md5 on every load, which rejects re-pickled or test copies of the same
    # format. The archive's md5 is still verified when torchvision downloads it, and every pickle is parsed in full
    # on load, so a truncated file still fails loudly (see _load_cifar).
    root: str
    base_folder: str
    train_list: list[list[str]]
    test_list: list[list[str]]
    meta: dict[str, str]

    @classmethod
    def required_files(cls) -> list[str]:
        """File names that must exist inside the dataset's folder."""
        return [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]

    def _check_integrity(self) -> bool:
        folder = Path(self.root, self.base_folder)
        return all((folder / name).is_file() for name in self.required_files())

    def _load_meta(self) -> None:
        with open(Path(self.root, self.base_folder, self.meta["filename"]), "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


@functools.cache
def _cifar_class(key: str) -> Any:
    """torchvision's CIFAR-10 or CIFAR-100 dataset with the presence check above (built on first use)."""
    from torchvision import datasets

    base = datasets.CIFAR10 if key == "cifar10" else datasets.CIFAR100
    return type(f"_{base.__name__}", (_PresenceCheckedCIFAR, base), {})


def _load_cifar(
    key: str, root: Path, train: bool, transform: Callable[[Any], torch.Tensor], download: bool
) -> VisionDataset:
    from torchvision.datasets.utils import download_and_extract_archive

    cls = _cifar_class(key)
    title = "CIFAR-10" if key == "cifar10" else "CIFAR-100"
    folder = root / cls.base_folder

    def missing() -> list[str]:
        return [name for name in cls.required_files() if not (folder / name).is_file()]

    attempt = "Download not attempted (download=False)."
    if missing() and download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
        except Exception as exc:  # offline, proxy, disk full, bad archive: all mean "provide it by hand"
            attempt = f"Download of {cls.url} failed: {type(exc).__name__}: {exc}"
    if absent := missing():
        raise DatasetUnavailable(
            f"{title} is not available.\n"
            f"Looked in: {folder} (missing: {', '.join(absent)}).\n"
            f"{attempt}\n"
            f"To provide it: download {cls.filename} from {cls.url} on a machine with internet access and extract it "
            f"into {root} (`tar -xzf {cls.filename} -C {root}` creates {folder}), "
            f"or set {DATA_ENV} to a directory that already contains {cls.base_folder}/."
        )
    try:
        return cls(str(root), train=train, transform=transform, download=False)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, AttributeError, TypeError) as exc:
        raise DatasetUnavailable(
            f"{title} files in {folder} are present but unreadable ({type(exc).__name__}: {exc}). "
            f"Delete {folder} and load again to re-download, or re-extract {cls.filename} there."
        ) from exc


# --------------------------------------------------------------------------------------------------------------------
# Fashion-MNIST


def _fashion_mnist_dirs(root: Path) -> list[Path]:
    raw = root / "FashionMNIST" / "raw"
    return [raw, root / "fashion-mnist", *FASHION_MNIST_SYSTEM_DIRS]


def _find_idx(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _stage_fashion_mnist(raw: Path, source: dict[str, Path]) -> None:
    """Copy (decompressing if gzipped) the four IDX files into torchvision's raw folder."""
    raw.mkdir(parents=True, exist_ok=True)
    for name, path in source.items():
        target = raw / name
        if path == target:
            continue
        # Write beside the target and rename, so an interrupted copy never leaves a truncated file that looks complete.
        partial = raw / f".{name}.partial"
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        os.replace(partial, target)


def _load_fashion_mnist(
    root: Path, train: bool, transform: Callable[[Any], torch.Tensor], download: bool
) -> VisionDataset:
    from torchvision import datasets

    raw = root / "FashionMNIST" / "raw"
    looked: list[str] = []
    found = False
    for directory in _fashion_mnist_dirs(root):
        source = {name: _find_idx(directory, name) for name in _FASHION_FILES}
        if all(path is not None for path in source.values()):
            try:
                _stage_fashion_mnist(raw, source)  # type: ignore[arg-type]
            except OSError as exc:
                raise DatasetUnavailable(
                    f"Fashion-MNIST was found in {directory} but could not be copied into {raw} "
                    f"({type(exc).__name__}: {exc}). Set {DATA_ENV} to a writable directory."
                ) from exc
            found = True
            break
        absent = [name for name, path in source.items() if path is None]
        looked.append(f"{directory} (missing: {', '.join(f'{n}[.gz]' for n in absent)})")

    attempt = "Download not attempted (download=False)."
    if not found and download:
        first = datasets.FashionMNIST.resources[0][0]
        urls = " or ".join(mirror + first for mirror in datasets.FashionMNIST.mirrors)
        try:
            root.mkdir(parents=True, exist_ok=True)
            datasets.FashionMNIST(str(root), train=train, download=True)
            found = True
        except Exception as exc:  # offline, proxy, disk full, bad archive: all mean "provide it by hand"
            detail = " ".join(str(exc).split())  # torchvision's report spans several lines
            attempt = f"Download of {urls} (and its three sibling files) failed: {type(exc).__name__}: {detail}"
    if not found:
        raise DatasetUnavailable(
            "Fashion-MNIST is not available.\n"
            "Looked in:\n  " + "\n  ".join(looked) + "\n"
            f"{attempt}\n"
            "To provide it: on Debian/Ubuntu `apt-get install dataset-fashion-mnist` (installs "
            f"{_DEBIAN_FASHION_MNIST}), or copy the four files train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz from "
            f"{datasets.FashionMNIST.mirrors[0]} into {root / 'fashion-mnist'}, "
            f"or set {DATA_ENV} to a directory that already contains them."
        )
    try:
        return datasets.FashionMNIST(str(root), train=train, transform=transform, download=False)
    except (OSError, ValueError, AssertionError, RuntimeError) as exc:
        raise DatasetUnavailable(
            f"Fashion-MNIST files in {raw} are present but unreadable ({type(exc).__name__}: {exc}). "
            f"Delete {raw} and load again to copy or download them afresh."
        ) from exc


# --------------------------------------------------------------------------------------------------------------------
# ImageNet


def _class_dirs(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir())


def _load_imagenet(root: Path, train: bool, transform: Callable[[Any], torch.Tensor]) -> VisionDataset:
    from torchvision import datasets

    split_dir = "train" if train else "val"
    # Accept either the ImageNet folder itself or a data root that contains it as imagenet/.
    candidates = [root, root / "imagenet"]
    for directory in candidates:
        if not (directory / split_dir).is_dir():
            continue
        other = directory / ("val" if train else "train")
        # ImageFolder numbers classes by sorted folder name, so train/ and val/ must hold the same classes or the
        # labels of one split silently shift against the other.
        if other.is_dir() and _class_dirs(other) != _class_dirs(directory / split_dir):
            raise DatasetUnavailable(
                f"ImageNet at {directory}: train/ and val/ hold different class folders, so their labels would not "
                "match. Sort the validation images into the same class folders as train/ (e.g. with valprep.sh)."
            )
        try:
            return datasets.ImageFolder(str(directory / split_dir), transform=transform)
        except FileNotFoundError as exc:
            raise DatasetUnavailable(
                f"ImageNet folder {directory / split_dir} has no class folders with images ({exc}). "
                "Expected <root>/train/<class>/<image> and <root>/val/<class>/<image>."
            ) from exc
    raise DatasetUnavailable(
        "ImageNet is not available.\n"
        f"Looked for {split_dir}/ in: {', '.join(str(d) for d in candidates)}.\n"
        "It cannot be downloaded automatically: its licence needs an account at https://image-net.org/download.php.\n"
        "To provide it: extract ILSVRC2012 into a folder laid out as <folder>/train/<class>/*.JPEG and "
        "<folder>/val/<class>/*.JPEG (sort the validation images into class folders), then pass root=<folder> "
        f"or put it at {candidates[-1]} (the data root is set by {DATA_ENV})."
    )
