import numpy as np
import pytest

from tb_weightnorm.graph.kernel_grid import CONV_KINDS, KernelGrid, kernel_grid

WHITE = (255, 255, 255)
DIVERGING_SEPARATOR = (200, 200, 200)


def _pixel(grid, filter_index, slice_index, cell, patch=3, y=1, x=1):
    """The pixel of element (y, x) of a patch, in a grid known to be ONE column
    of filters (1-px gaps between a filter's patches, 2-px gaps between filters)."""
    side = patch * cell
    row = filter_index * (side + 2) + y * cell + cell // 2
    col = slice_index * (side + 1) + x * cell + cell // 2
    return tuple(int(v) for v in grid.image[row, col])


# Expected sizes worked out by hand from the layout rules: e.g. Conv2D
# [5, 5, 3, 40]: 3 px per element (15-px patches), a filter is 3*15 + 2 = 47 px
# wide; 4 columns x 10 rows of filters is the squarest tiling: 194 x 168.
@pytest.mark.parametrize(
    "kind, shape, total, image_hw",
    [
        ("Conv2D", [3, 3, 5, 7], 7, (96, 64)),
        ("Conv2D", [5, 5, 3, 40], 40, (168, 194)),
        ("Conv1D", [7, 4, 9], 9, (70, 171)),
        ("Conv3D", [2, 3, 3, 2, 4], 4, (54, 51)),
        ("DepthwiseConv2D", [3, 3, 6, 2], 12, (54, 40)),
        ("SeparableConv2D", [3, 3, 6, 2], 12, (54, 40)),
        ("Conv2DTranspose", [4, 4, 10, 3], 10, (68, 78)),
    ],
)
def test_image_size_and_filter_count_for_every_kind(kind, shape, total, image_hw):
    kernel = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    grid = kernel_grid(kernel, kind=kind)
    assert isinstance(grid, KernelGrid)
    assert grid.image.dtype == np.uint8
    assert grid.image.shape == image_hw + (3,)
    assert grid.filters_total == total and grid.filters_shown == total
    assert grid.mode == "diverging"
    np.testing.assert_allclose(grid.scale, np.abs(kernel).max(), rtol=1e-6)
    assert kind in CONV_KINDS


def test_conv2d_transpose_filters_are_along_axis_2():
    kernel = np.zeros([3, 3, 2, 3], np.float32)  # [kh, kw, out=2, in=3]
    kernel[1, 1, 1, 2] = 1.0  # filter 1, slice 2
    grid = kernel_grid(kernel, kind="Conv2DTranspose", cell=4)
    assert grid.filters_total == 2
    assert grid.image.shape == (26, 38, 3)  # 2 filters of 3 patches, one column
    assert _pixel(grid, 1, 2, cell=4) != WHITE
    assert _pixel(grid, 0, 0, cell=4) == WHITE


def test_depthwise_filters_follow_the_layer_output_order():
    kernel = np.zeros([3, 3, 2, 3], np.float32)  # in=2, multiplier=3
    kernel[1, 1, 1, 0] = 1.0  # channel 1, multiplier 0: output 1 * 3 + 0 = 3
    grid = kernel_grid(kernel, kind="DepthwiseConv2D", max_filters=4, cell=4)
    assert (grid.filters_shown, grid.filters_total) == (4, 6)
    assert grid.scale == 1.0  # filter 3 is among the 4 shown
    assert kernel_grid(kernel, kind="DepthwiseConv2D", max_filters=3).scale == 0.0


def test_max_filters_caps_the_filters_and_hidden_ones_do_not_set_the_scale():
    kernel = np.full([3, 3, 4, 100], 0.5, np.float32)
    kernel[..., 50] = 100.0
    grid = kernel_grid(kernel, kind="Conv2D", max_filters=10)
    assert (grid.filters_shown, grid.filters_total) == (10, 100)
    assert grid.scale == 0.5
    assert kernel_grid(kernel, kind="Conv2D").filters_shown == 64


def test_scale_is_shared_so_a_weak_filter_is_paler():
    kernel = np.zeros([3, 3, 2, 2], np.float32)
    kernel[..., 0] = 1.0
    kernel[..., 1] = 0.25
    grid = kernel_grid(kernel, kind="Conv2D", cell=4)
    assert grid.image.shape == (26, 25, 3)  # one column of 2 filters
    strong, weak = _pixel(grid, 0, 1, cell=4), _pixel(grid, 1, 1, cell=4)
    assert grid.scale == 1.0
    assert strong[0] > strong[2] and weak[0] > weak[2]  # both red
    assert weak[1] > strong[1] + 50 and weak[2] > strong[2] + 50  # weak is much closer to white


def test_sign_maps_to_red_blue_and_zero_to_white():
    kernel = np.zeros([3, 3, 3, 1], np.float32)
    kernel[..., 0, 0] = 0.8
    kernel[..., 1, 0] = -0.8
    grid = kernel_grid(kernel, kind="Conv2D", cell=4)
    red, blue, zero = (_pixel(grid, 0, s, cell=4) for s in range(3))
    assert red[0] > red[2] + 50
    assert blue[2] > blue[0] + 50
    assert zero == WHITE
    # Separators are a neutral grey that the colormap never produces.
    assert tuple(grid.image[0, 12]) == DIVERGING_SEPARATOR


def test_rgb_mode_draws_each_filter_as_one_colour_patch():
    kernel = np.zeros([3, 3, 3, 2], np.float32)
    kernel[..., 0] = [2.0, -2.0, -2.0]  # pure red: R up, G and B down
    grid = kernel_grid(kernel, kind="Conv2D", rgb_input=True, cell=4)
    assert grid.mode == "rgb" and grid.scale == 2.0
    assert grid.image.shape == (26, 12, 3)  # one patch per filter
    assert _pixel(grid, 0, 0, cell=4) == (255, 0, 0)
    assert _pixel(grid, 1, 0, cell=4) == (128, 128, 128)  # zero is mid grey


def test_rgb_mode_only_for_three_input_channels_and_not_for_depthwise():
    kernel = np.ones([3, 3, 3, 2], np.float32)
    assert kernel_grid(kernel[:, :, :2], kind="Conv2D", rgb_input=True).mode == "diverging"
    assert kernel_grid(kernel, kind="DepthwiseConv2D", rgb_input=True).mode == "diverging"
    assert kernel_grid(kernel, kind="Conv2D").mode == "diverging"
    assert kernel_grid(np.ones([5, 3, 4]), kind="Conv1D", rgb_input=True).mode == "rgb"


def test_nan_and_inf_are_marked_and_excluded_from_the_scale():
    kernel = np.full([3, 3, 2, 1], 0.5, np.float32)
    kernel[1, 1, 0, 0] = np.nan
    kernel[1, 1, 1, 0] = -np.inf
    kernel[0, 0, 1, 0] = np.inf
    grid = kernel_grid(kernel, kind="Conv2D", cell=4)
    assert grid.scale == 0.5
    assert _pixel(grid, 0, 0, cell=4) == (0, 0, 0)
    assert _pixel(grid, 0, 1, cell=4) == (255, 255, 0)
    assert _pixel(grid, 0, 1, cell=4, y=0, x=0) == (255, 255, 0)
    assert _pixel(grid, 0, 0, cell=4, y=0, x=0)[0] > 150  # finite 0.5 drawn at full red


def test_rgb_mode_marks_a_pixel_with_any_non_finite_channel():
    kernel = np.full([3, 3, 3, 1], 0.5, np.float32)
    kernel[0, 0, 1, 0] = np.nan
    kernel[1, 1, 2, 0] = np.inf
    grid = kernel_grid(kernel, kind="Conv2D", rgb_input=True, cell=4)
    assert grid.scale == 0.5
    assert _pixel(grid, 0, 0, cell=4, y=0, x=0) == (0, 0, 0)
    assert _pixel(grid, 0, 0, cell=4) == (255, 255, 0)
    assert _pixel(grid, 0, 0, cell=4, y=2, x=2) == (255, 255, 255)


def test_all_non_finite_kernel_draws_markers_with_scale_zero():
    grid = kernel_grid(np.full([3, 3, 1, 1], np.nan), kind="Conv2D", cell=4)
    assert grid.scale == 0.0
    assert (grid.image == 0).all()


def test_zero_kernel_is_a_white_grid_with_scale_zero():
    grid = kernel_grid(np.zeros([3, 3, 4, 6]), kind="Conv2D")
    assert grid.scale == 0.0 and grid.filters_shown == 6
    colours = {tuple(c) for c in grid.image.reshape(-1, 3)}
    assert colours == {WHITE, DIVERGING_SEPARATOR}


def test_only_the_first_16_slices_of_a_filter_are_drawn():
    grid = kernel_grid(np.ones([3, 3, 40, 2]), kind="Conv2D", cell=4)
    assert grid.image.shape == (26, 16 * 12 + 15, 3)


def test_conv3d_shows_whole_input_channels_within_16_patches():
    kernel = np.zeros([3, 3, 3, 10, 1], np.float32)  # kd=3: 5 whole channels = 15 patches
    kernel[2, 1, 1, 4, 0] = 1.0  # channel 4, depth 2: patch 4 * 3 + 2 = 14
    kernel[0, 1, 1, 5, 0] = 9.0  # channel 5 is not drawn, so not in the scale
    grid = kernel_grid(kernel, kind="Conv3D", cell=4)
    assert grid.image.shape == (12, 15 * 12 + 14, 3)
    assert grid.scale == 1.0
    assert _pixel(grid, 0, 14, cell=4)[0] > _pixel(grid, 0, 14, cell=4)[2]
    assert _pixel(grid, 0, 13, cell=4) == WHITE


def test_forced_cell_and_automatic_cell():
    kernel = np.ones([3, 3, 1, 1])
    assert kernel_grid(kernel, kind="Conv2D", cell=1).image.shape == (3, 3, 3)
    assert kernel_grid(kernel, kind="Conv2D", cell=7).image.shape == (21, 21, 3)
    assert kernel_grid(kernel, kind="Conv2D").image.shape[0] >= 12
    assert kernel_grid(np.ones([1, 1, 1, 1]), kind="Conv2D").image.shape[0] >= 12


@pytest.mark.parametrize(
    "kind, shape, max_filters",
    [
        ("Conv2D", [3, 3, 512, 512], 64),
        ("Conv2D", [3, 3, 512, 512], 512),
        ("Conv2D", [3, 3, 512, 512], 10**6),
        ("DepthwiseConv2D", [1, 1, 4096, 4], 10**6),
        ("Conv1D", [5000, 3, 2], 64),  # a single strip longer than the limit
    ],
)
def test_image_never_exceeds_2048_px(kind, shape, max_filters):
    kernel = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    grid = kernel_grid(kernel, kind=kind, max_filters=max_filters, cell=20)
    assert grid.image.dtype == np.uint8 and grid.image.ndim == 3 and grid.image.shape[2] == 3
    assert max(grid.image.shape[:2]) <= 2048
    assert 1 <= grid.filters_shown <= min(max_filters, grid.filters_total)


def test_big_kernel_still_shows_all_requested_filters():
    grid = kernel_grid(np.ones([3, 3, 512, 512], np.float32), kind="Conv2D", max_filters=512)
    assert grid.filters_shown == 512 and max(grid.image.shape[:2]) <= 2048


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16", "int32"])
def test_any_real_dtype_draws_the_same_image(dtype):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    kernel = np.arange(-8, 10, dtype=np.float64).reshape(3, 3, 2, 1)
    expected = kernel_grid(kernel, kind="Conv2D")
    grid = kernel_grid(kernel.astype(dtype), kind="Conv2D")
    np.testing.assert_array_equal(grid.image, expected.image)
    assert grid.scale == 9.0


def test_large_float64_values_are_not_treated_as_infinite():
    grid = kernel_grid(np.full([1, 1, 1, 1], 1e300), kind="Conv2D", cell=1)
    assert grid.scale == 1e300
    assert tuple(grid.image[0, 0]) == (165, 0, 38)  # full red, not the Inf marker


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(kernel=np.ones([3, 3, 4]), kind="Conv2D"),
            r"Conv2D kernels have rank 4 \[kh, kw, in, out\]; got shape \(3, 3, 4\)",
        ),
        (dict(kernel=np.ones([3, 3, 4, 2]), kind="Conv1D"), r"rank 3 \[k, in, out\]"),
        (dict(kernel=np.ones([3, 3, 4, 2]), kind="Conv3D"), r"rank 5 \[kd, kh, kw, in, out\]"),
        (dict(kernel=np.ones([3, 3, 4]), kind="Conv2DTranspose"), r"\[kh, kw, out, in\]"),
        (dict(kernel=np.ones([3, 3, 4]), kind="DepthwiseConv2D"), r"\[kh, kw, in, depth_multiplier\]"),
        (dict(kernel=np.ones([3, 3, 4, 2]), kind="Dense"), r"Unknown kind 'Dense'; expected one of Conv1D"),
        (dict(kernel=np.ones([3, 3, 4, 2]), kind="Conv2D", max_filters=0), r"max_filters must be at least 1"),
        (dict(kernel=np.ones([3, 3, 4, 2]), kind="Conv2D", cell=-1), r"cell must be 0"),
        (dict(kernel=np.ones([3, 3, 0, 2]), kind="Conv2D"), r"no elements"),
        (dict(kernel=np.ones([3, 3, 1, 1], complex), kind="Conv2D"), r"real numbers"),
    ],
)
def test_bad_inputs_raise_value_error_naming_what_was_expected(kwargs, message):
    kernel = kwargs.pop("kernel")
    with pytest.raises(ValueError, match=message):
        kernel_grid(kernel, **kwargs)


def test_input_is_not_modified():
    kernel = np.random.default_rng(2).normal(size=[3, 3, 2, 4]).astype(np.float32)
    kernel[0, 0, 0, 0] = np.nan
    before = kernel.copy()
    kernel_grid(kernel, kind="Conv2D")
    np.testing.assert_array_equal(kernel, before)
