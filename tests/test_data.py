import pytest
import torch
import torchvision

from eenas.data import Batches, load_splits, resolve_data_dir, synthetic_dataset
from eenas.errors import EenasError


def test_synthetic_is_deterministic_and_balanced():
    a, b = synthetic_dataset(500, seed=3), synthetic_dataset(500, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.dtype == torch.uint8 and a.images.shape == (500, 3, 32, 32)
    assert len(a.labels.unique()) == 10
    assert not torch.equal(a.images, synthetic_dataset(500, seed=4).images)


def test_split_is_seeded_and_disjoint():
    s1, s2 = load_splits("synthetic", seed=0), load_splits("synthetic", seed=0)
    assert torch.equal(s1.val.images, s2.val.images)
    assert len(s1.val) == round(0.1 * (len(s1.train) + len(s1.val)))
    other = load_splits("synthetic", seed=1)
    assert not torch.equal(s1.val.labels, other.val.labels)


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(EenasError, match="unknown dataset 'mnist'"):
        load_splits("mnist")


def test_data_dir_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("EENAS_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"


def test_missing_data_offline_says_how_to_point_at_a_copy(monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    with pytest.raises(EenasError, match=r"--data-dir or \$EENAS_DATA"):
        load_splits("cifar10", data_dir=tmp_path)


def test_batches_normalise_and_augment():
    data = synthetic_dataset(70)
    plain = list(Batches(data, "synthetic", 32, torch.device("cpu")))
    assert [len(y) for _, y in plain] == [32, 32, 6]
    x = torch.cat([b[0] for b in plain])
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert abs(x.mean().item()) < 0.5
    aug = torch.cat([b[0] for b in Batches(data, "synthetic", 32, torch.device("cpu"), augment=True)])
    assert aug.shape == x.shape and not torch.equal(aug, x)


@pytest.mark.slow
def test_real_cifar10_loads_from_either_folder(cifar_dir):
    splits = load_splits("cifar10", data_dir=cifar_dir)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (45000, 5000, 10000)
    again = load_splits("cifar10", data_dir=cifar_dir / "cifar-10-batches-py")
    assert torch.equal(again.test.labels, splits.test.labels)
