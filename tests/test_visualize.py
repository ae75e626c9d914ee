"""Pictures carry a title, a title over each column and a legend."""

import numpy as np

from gan_partseg.visualize import column_titles, with_legend


def test_each_column_gets_its_own_title_and_the_legend_stays_below():
    grid = np.zeros((64, 300, 3), np.uint8)  # three columns of 100 px
    header = column_titles(["face", "prediction", "truth"], 300)
    assert header.shape[1] == 300
    ink = (header < 128).any(-1)
    for c in range(3):  # text inside every column, and centred: the column's edges stay blank
        col = ink[:, 100 * c: 100 * (c + 1)]
        assert col.any() and not col[:, :5].any() and not col[:, -5:].any()
    out = with_legend(grid, {0: "background", 1: "eye"}, "A title", columns=["face", "prediction", "truth"])
    assert out.shape[0] > grid.shape[0] + header.shape[0]  # title + header + grid + legend
    rows_of_grid = [i for i in range(out.shape[0]) if (out[i] == 0).all()]
    assert rows_of_grid[0] > header.shape[0] and rows_of_grid[-1] < out.shape[0] - 1  # legend strip below
