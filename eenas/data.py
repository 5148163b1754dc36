"""Datasets as in-memory uint8 tensors, a seeded train/validation split, and fast batching.

CIFAR images are small enough to hold in memory, so batches are sliced from tensors and
augmented on the training device (random crop with 4-pixel padding, horizontal flip).  On
2 CPU cores this is several times faster than a per-image PIL pipeline, and it works the
same on CUDA.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from eenas.datasets import DATASET_CLASSES, unknown_dataset
from eenas.errors import EenasError

log = logging.getLogger(__name__)

DATA_ENV = "EENAS_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/eenas/data").expanduser()

# Per-channel statistics on the [0, 1] scale (training splits).
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "synthetic": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}


def pixel_normalization(dataset: str, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std on the 0..255 pixel scale, float32 ``[1, 3, 1, 1]``: the input is ``(pixel - mean) / std``.

    Training computes exactly this; a deployment must too (``manifest.json`` of ``eenas export`` gives these
    numbers), since ``(pixel / 255 - mean) / std`` differs in the last bits, which moves an 8-bit input code
    wherever a value lies on its rounding boundary.
    """
    mean, std = NORMALIZATION[dataset]
    return (torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255,
            torch.tensor(std, device=device).view(1, 3, 1, 1) * 255)


TORCHVISION_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


@dataclass(frozen=True)
class TensorSet:
    """Images as uint8 ``[N, 3, 32, 32]`` and labels as int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, limit: int | None) -> TensorSet:
        if limit is None or limit >= len(self):
            return self
        return TensorSet(self.images[:limit], self.labels[:limit])


@dataclass(frozen=True)
class Splits:
    dataset: str
    train: TensorSet
    val: TensorSet
    test: TensorSet

    @property
    def num_classes(self) -> int:
        return DATASET_CLASSES[self.dataset]


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``--data-dir`` wins, then ``$EENAS_DATA``, then ``~/.cache/eenas/data``."""
    chosen = data_dir or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser()


def _torchvision_root(name: str, data_dir: Path) -> Path:
    """Accept either the folder that holds ``cifar-10-batches-py`` or that folder itself."""
    folder = TORCHVISION_FOLDERS[name]
    if data_dir.name == folder:
        return data_dir.parent
    return data_dir


def _load_cifar(name: str, data_dir: Path, train: bool) -> TensorSet:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    root = _torchvision_root(name, data_dir)
    try:
        ds = cls(root=str(root), train=train, download=False)
    except RuntimeError:
        ds = _download(cls, name, root, train)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return TensorSet(images, torch.tensor(ds.targets, dtype=torch.int64))


def _download(cls, name: str, root: Path, train: bool):
    log.info("%s not found under %s; downloading it there", name, root)
    try:
        return cls(root=str(root), train=train, download=True)
    except Exception as exc:  # offline, no permission, corrupt archive: all the same to the user
        raise EenasError(
            f"{name} is not under {root} and could not be downloaded ({type(exc).__name__}); "
            f"point --data-dir or ${DATA_ENV} at a folder holding {TORCHVISION_FOLDERS[name]}/"
        ) from None


def synthetic_dataset(n: int, num_classes: int = 10, seed: int = 0) -> TensorSet:
    """A small, deterministic, learnable stand-in for CIFAR: noisy smooth class prototypes.

    Each class is a random low-frequency colour pattern; samples add a random shift and
    pixel noise, so a tiny network separates them within a few epochs but not trivially.
    """
    gen = torch.Generator().manual_seed(10_007)  # prototypes are the same for every split
    coarse = torch.rand(num_classes, 3, 4, 4, generator=gen)
    prototypes = torch.nn.functional.interpolate(coarse, size=(40, 40), mode="bilinear", align_corners=False)
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    dx, dy = torch.randint(0, 9, (2, n), generator=gen)
    images = torch.stack([prototypes[c, :, y : y + 32, x : x + 32] for c, x, y in zip(labels, dx, dy)])
    images = images + 0.15 * torch.randn(images.shape, generator=gen)
    return TensorSet((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)


def load_splits(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    synthetic_size: int = 1600,
) -> Splits:
    """Train/validation split of the training set (seeded) and the official test split."""
    if dataset not in DATASET_CLASSES:
        raise EenasError(unknown_dataset(dataset))
    if dataset == "synthetic":
        full = synthetic_dataset(synthetic_size, seed=1)
        test = synthetic_dataset(synthetic_size // 4, seed=2)
    else:
        root = resolve_data_dir(data_dir)
        full, test = _load_cifar(dataset, root, True), _load_cifar(dataset, root, False)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(len(full) * val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    train = TensorSet(full.images[train_idx], full.labels[train_idx])
    val = TensorSet(full.images[val_idx], full.labels[val_idx])
    return Splits(dataset, train, val, test)


def batch_indices(n: int, batch_size: int, shuffle: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Indices of consecutive mini-batches over ``n`` items, shuffled by ``shuffle`` if given."""
    order = torch.randperm(n, generator=shuffle) if shuffle is not None else torch.arange(n)
    return iter(order.split(batch_size))


class Batches:
    """Normalised (optionally augmented) mini-batches from a :class:`TensorSet` on ``device``."""

    def __init__(
        self,
        data: TensorSet,
        dataset: str,
        batch_size: int,
        device: torch.device,
        shuffle: bool = False,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.data, self.batch_size, self.device = data, batch_size, device
        self.shuffle, self.augment = shuffle, augment
        self.gen = torch.Generator().manual_seed(seed)
        self.mean, self.std = pixel_normalization(dataset, device)

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in batch_indices(len(self.data), self.batch_size, self.gen if self.shuffle else None):
            x = self.data.images[idx].to(self.device, non_blocking=True)
            y = self.data.labels[idx].to(self.device, non_blocking=True)
            if self.augment:
                x = self._augment(x)
            x = ((x.float() - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
            yield x, y

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """Random 32x32 crop of the 4-pixel zero-padded image and a random horizontal flip."""
        n = x.shape[0]
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
        ox, oy = torch.randint(0, 9, (2, n), generator=self.gen).tolist()
        flips = torch.rand(n, generator=self.gen) < 0.5
        crops = torch.stack([padded[i, :, b : b + 32, a : a + 32] for i, (a, b) in enumerate(zip(ox, oy))])
        return torch.where(flips.to(x.device).view(-1, 1, 1, 1), crops.flip(3), crops)
