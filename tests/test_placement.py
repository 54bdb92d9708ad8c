"""Physical placement: each crossbar weight on exactly one cell, and as many tiles as the cost model counts."""
import numpy as np
import pytest
import torch

from dse.core.cost import per_image as cost
from dse.core.cost.isaac import IsaacConfig
from dse.core.crossbar.placement import model_placement, place_layer
from dse.core.models import build_model


def meta_model(network, width):
    with torch.device("meta"):
        return build_model(network, width, 1)


@pytest.mark.parametrize("network", ["resnet20", "mobilenetv2", "vgg13"])
@pytest.mark.parametrize("width", [1.0, 1.2, 1.6])
@pytest.mark.parametrize("policy", ["default", "all-on-crossbar"])
def test_placement_uses_the_crossbars_the_cost_model_counts(network, width, policy):
    placement = model_placement(meta_model(network, width), policy)
    counted = {r.name: r for r in cost.count_layers(network, width, 1, policy) if r.on_crossbar}
    config = IsaacConfig()  # one 8-bit weight per cell: the fault model's cell is the cost model's
    assert config.cells_per_weight == 1
    assert list(placement.layers) == list(counted)
    for name, lp in placement.layers.items():
        assert lp.tiles == cost.crossbars_for(counted[name], config), name
    assert placement.tiles == cost.isaac_cost(network, width, 1, policy).totals["crossbars_one_copy"]  # replicas aside


@pytest.mark.parametrize("network", ["resnet20", "mobilenetv2"])
def test_every_weight_has_its_own_cell_on_its_layers_tiles(network):
    placement = model_placement(meta_model(network, 1.0), "all-on-crossbar")
    cells = np.concatenate([(lp.tile * 128 + lp.row) * 128 + lp.col for lp in placement.layers.values()], axis=None)
    assert len(np.unique(cells)) == cells.size  # no two weights share a cell
    for lp in placement.layers.values():
        assert lp.tile.min() == lp.first_tile and lp.tile.max() == lp.first_tile + lp.tiles - 1
        assert 0 <= lp.row.min() and lp.row.max() < 128 and 0 <= lp.col.min() and lp.col.max() < 128
    assert placement.occupancy().sum() == cells.size


def test_rows_are_inputs_and_columns_are_outputs():
    n, tile, row, col = place_layer((300, 16, 3, 3))  # 144 rows x 300 columns: 2 x 3 tiles
    assert n == 6
    flat_row = (tile // 3) * 128 + row  # the matrix row: input channel x kernel position
    flat_col = (tile % 3) * 128 + col
    assert (flat_row == np.arange(144).reshape(1, 16, 3, 3)).all()
    assert (flat_col == np.arange(300).reshape(300, 1, 1, 1)).all()


def test_depthwise_groups_pack_block_diagonally():
    n, tile, row, col = place_layer((32, 1, 3, 3), groups=32)  # 9 x 1 per group: 14 groups a tile
    assert n == 3
    assert (tile[:14] == 0).all() and (tile[14:28] == 1).all() and (tile[28:] == 2).all()
    assert row[1, 0, 0, 0] == 9 and col[1, 0, 0, 0] == 1  # the second group's block, below and right
