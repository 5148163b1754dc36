"""The allocation objective ``average``: the backbone's allocation searched for one early-exit network's average ET."""

from __future__ import annotations

import sys

import pytest

from eenas.arch import Arch, BackboneConfig, ExitConfig, Precision, QuantConfig, save_arch
from eenas.cli import main
from eenas.errors import EenasError
from eenas.hardware import allocation as alloc_module
from eenas.hardware import clear_caches, network_cost, use_cache_dir

RATIOS = (0.9, 0.1)


@pytest.fixture(autouse=True)
def small_ga(monkeypatch):
    """A 6 x 2 GA, and no result of it left in the in-process caches afterwards."""
    monkeypatch.setattr(alloc_module, "POPULATION", 6)
    monkeypatch.setattr(alloc_module, "GENERATIONS", 2)
    clear_caches()
    yield
    clear_caches()


def early_exit(hardware: str = "sys_EEMY") -> Arch:
    quant = QuantConfig(Precision(8, 8), Precision(8, 8))
    return Arch("cifar10", BackboneConfig("mobilenet_v2", 0.5), (ExitConfig(3, "pool_fc", 0.9),), quant, hardware)


def test_it_pays_where_the_static_allocation_does_not_suit_the_exits():
    # Resident weights, 90% of samples leave after block 3: the static allocation puts the early layers where the
    # whole network gains, not where an early exit does.
    static = network_cost(early_exit(), exit_ratios=RATIOS, weights="resident")
    average = network_cost(early_exit(), exit_ratios=RATIOS, weights="resident", objective="average")
    assert (static.allocation.method, average.allocation.method) == ("searched", "average")
    assert average.allocation.cores != static.allocation.cores
    assert average.cost.average_et(RATIOS) < 0.9 * static.cost.average_et(RATIOS)
    # Its static baseline is the static network on that allocation, so its ET ratio is not the static one's.
    assert average.cost.static_et == pytest.approx(average.allocation.et)
    assert average.cost.static_et > static.cost.static_et
    # The static plan is left as it was for every other caller.
    assert network_cost(early_exit(), exit_ratios=RATIOS, weights="resident").allocation == static.allocation


def test_it_keeps_the_static_allocation_when_that_stays_the_best():
    static = network_cost(early_exit(), exit_ratios=RATIOS)  # streamed: every layer on one core is best either way
    assert network_cost(early_exit(), exit_ratios=RATIOS, objective="average").allocation == static.allocation


@pytest.mark.parametrize("kwargs, message", [
    ({"exit_ratios": RATIOS, "objective": "fastest"}, "allocation objective: 'fastest' is not one of static, average"),
    ({"objective": "average"}, "allocation objective: 'average' needs the exit ratios"),
    ({"exit_ratios": RATIOS, "objective": "average", "allocation": "greedy"}, "not with allocation 'greedy'"),
    ({"exit_ratios": (1.0,), "objective": "average"}, "exit ratios: expected 2 values"),
])
def test_errors_name_the_option(kwargs, message):
    with pytest.raises(EenasError, match=message):
        network_cost(early_exit(), **kwargs)


def test_its_search_is_cached_on_disk(tmp_path, monkeypatch):
    with use_cache_dir(tmp_path):
        first = network_cost(early_exit(), exit_ratios=RATIOS, weights="resident", objective="average")
        assert len(list((tmp_path / "allocation").iterdir())) == 2  # the static search and this one
        clear_caches()

        def no_search(*args):
            raise AssertionError("searched again")

        monkeypatch.setattr(alloc_module, "_search", no_search)
        again = network_cost(early_exit(), exit_ratios=RATIOS, weights="resident", objective="average")
        assert again.allocation == first.allocation
        with pytest.raises(AssertionError, match="searched again"):  # other ratios are another search
            network_cost(early_exit(), exit_ratios=(0.5, 0.5), weights="resident", objective="average")


def test_cli(tmp_path, monkeypatch, capsys):
    path = tmp_path / "arch.json"
    save_arch(early_exit(), path)
    base = ["eenas", "cost", "--arch", str(path), "--cache-dir", str(tmp_path / "cache"), "--format", "csv",
            "--allocation-objective", "average"]
    monkeypatch.setattr(sys, "argv", [*base, "--weights", "resident", "--exit-ratios", "0.9,0.1"])
    main()
    assert "\nallocation,average\n" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", base)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "eenas: error: allocation objective: 'average' needs the exit ratios"
