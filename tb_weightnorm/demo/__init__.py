"""The demo: four small models trained on images it draws itself (no download).

`python -m tb_weightnorm.demo` trains them, writes their logs, starts
TensorBoard and prints its URL. `images` draws the data, `scenarios` holds the
four runs (one healthy, three that go wrong), `training` trains them.
"""

from tb_weightnorm.demo.training import main, train

__all__ = ["main", "train"]
