import pytest
import torch

from eenas.models.backbone import Backbone
from eenas.models.early_exit import EarlyExitNet
from eenas.models.heads import build_head
from eenas.models.spec import HEADS, NUM_BLOCKS, make_divisible, mobilenet_v2_spec


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0])
def test_tap_shapes_match_the_spec_at_every_mount_point(width):
    spec = mobilenet_v2_spec(width)
    model = Backbone(10, width).eval()
    taps, logits = model.taps(torch.randn(2, 3, 32, 32), range(1, NUM_BLOCKS + 1))
    assert logits.shape == (2, 10)
    for b in range(1, NUM_BLOCKS + 1):
        block = spec.block(b)
        assert taps[b].shape == (2, block.out_channels, block.out_size, block.out_size), b
    assert model.features[0][0].out_channels == spec.stem_channels
    assert model.final[-1][-1].in_features == spec.last_channels


def test_spatial_sizes_follow_the_documented_adaptation():
    sizes = [b.out_size for b in mobilenet_v2_spec(1.0).blocks]
    assert sizes == [32, 16, 16, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2]


def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible

    for value in (3.2, 12, 20, 33.6, 80, 1280 * 0.35):
        assert make_divisible(value) == _make_divisible(value, 8)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("mount", [1, 4, 9, 17])
def test_every_head_fits_every_mount(head, mount):
    block = mobilenet_v2_spec(0.5).block(mount)
    model = build_head(head, block.out_channels, block.out_size, 10)
    assert model(torch.randn(3, block.out_channels, block.out_size, block.out_size)).shape == (3, 10)


def test_head_cost_grows_along_the_library():
    block = mobilenet_v2_spec(1.0).block(3)
    params = [sum(p.numel() for p in build_head(h, block.out_channels, block.out_size, 10).parameters())
              for h in HEADS]
    assert params == sorted(params) and len(params) >= 3


def test_early_exit_net_returns_every_exit_in_order():
    backbone = Backbone(10, 0.25)
    spec = mobilenet_v2_spec(0.25)
    heads = {b: build_head("gap_fc", spec.block(b).out_channels, spec.block(b).out_size, 10) for b in (9, 2)}
    net, x = EarlyExitNet(backbone, heads).eval(), torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs = net(x)
        # features[b] is block b: the head after block 2 reads features[:3], whatever order the dict had
        expected = [heads[2](backbone.features[:3](x)), heads[9](backbone.features[:10](x)), backbone(x)]
    assert net.mounts == [2, 9] and len(outs) == 3 and all(o.shape == (2, 10) for o in outs)
    for out, want in zip(outs, expected):
        torch.testing.assert_close(out, want)
