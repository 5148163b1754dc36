"""The backbone's layer-to-core allocation: greedy earliest finish, and the genetic search that may beat it."""

from __future__ import annotations

import json

import pytest

from eenas.arch import Arch, BackboneConfig, Precision, QuantConfig
from eenas.errors import EenasError
from eenas.hardware import allocation as alloc_module
from eenas.hardware import backbone_allocation, clear_caches, cost_arch, network_cost, use_cache_dir
from eenas.hardware.layers import ConvLayer
from eenas.hardware.workload import backbone


def arch(width: float = 0.5, bits: int = 8, hardware: str = "edge_tpu_quad") -> Arch:
    quant = QuantConfig(Precision(bits, bits), Precision(bits, bits))
    return Arch("cifar10", BackboneConfig("mobilenet_v2", width), (), quant, hardware)


@pytest.fixture()
def small_ga(monkeypatch):
    """A 6 x 3 GA, and no result of it left in the in-process caches afterwards."""
    monkeypatch.setattr(alloc_module, "POPULATION", 6)
    monkeypatch.setattr(alloc_module, "GENERATIONS", 3)
    clear_caches()
    yield
    clear_caches()


def test_the_allocation_is_what_the_schedule_runs():
    for method in ("greedy", "searched"):
        a = arch(bits=4)
        allocation = backbone_allocation(a, weights="resident", allocation=method)
        nc = network_cost(a, weights="resident", allocation=method)
        cores = [int(r.location.removeprefix("tpu")) for r in nc.layers if r.kind not in ("pool", "add")]
        assert tuple(cores) == allocation.cores
        assert (nc.cost.static_latency_cycles, nc.cost.static_energy_pj) == pytest.approx(
            (allocation.latency_cycles, allocation.energy_pj))
        assert nc.allocation == allocation


def test_the_search_never_loses_to_greedy_and_is_used():
    # Quad core, width 0.5, W8A8, resident weights: the GA finds an allocation with a lower static ET.
    a = arch()
    greedy = backbone_allocation(a, weights="resident", allocation="greedy")
    searched = backbone_allocation(a, weights="resident")
    assert greedy.method == "greedy" and searched.method == "searched"
    assert searched.et < greedy.et and searched.cores != greedy.cores
    assert cost_arch(a, weights="resident").static_et == pytest.approx(searched.et)


def test_one_core_has_nothing_to_search(tmp_path):
    with use_cache_dir(tmp_path):
        allocation = backbone_allocation(arch(hardware="edge_tpu_single"))
    assert allocation.method == "greedy" and set(allocation.cores) == {0}
    assert not (tmp_path / "allocation").exists()


def test_the_search_is_deterministic(small_ga):
    first = backbone_allocation(arch(width=1.0), allocation="searched")
    clear_caches()
    assert backbone_allocation(arch(width=1.0), allocation="searched") == first


def test_searched_allocations_are_cached_on_disk(small_ga, tmp_path, monkeypatch, caplog):
    a = arch(width=1.0, bits=4)
    with use_cache_dir(tmp_path):
        first = backbone_allocation(a)
        (entry,) = (tmp_path / "allocation").iterdir()
        assert len(json.loads(entry.read_text())["cores"]) == len(first.cores) == _convolutions(a)
        clear_caches()

        def no_search(*args):
            raise AssertionError("searched again")

        monkeypatch.setattr(alloc_module, "_search", no_search)
        assert backbone_allocation(a) == first  # from disk
        with pytest.raises(AssertionError, match="searched again"):  # another mode is another entry
            backbone_allocation(a, weights="resident")
        monkeypatch.undo()
        monkeypatch.setattr(alloc_module, "POPULATION", 6)
        monkeypatch.setattr(alloc_module, "GENERATIONS", 3)
        entry.write_text('{"cores": [7]}')
        clear_caches()
        assert backbone_allocation(a) == first  # an invalid entry is searched again and rewritten
        assert "not valid" in caplog.text and len(json.loads(entry.read_text())["cores"]) == len(first.cores)
    clear_caches()
    backbone_allocation(a, weights="resident")
    assert len(list((tmp_path / "allocation").iterdir())) == 1  # outside the block, nothing is written


def _convolutions(a: Arch) -> int:
    blocks = backbone(a.backbone.width_mult, a.quant.backbone, a.num_classes)
    return sum(isinstance(n.layer, ConvLayer) for b in blocks for n in b.nodes)


def test_unknown_allocation_is_an_error():
    with pytest.raises(EenasError, match="allocation: 'random' is not one of greedy, searched"):
        cost_arch(arch(), allocation="random")
