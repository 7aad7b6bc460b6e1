"""The TensorBoard plugin: the "Weight Health" tab's backend.

`weight_health_plugin` holds the routes (documented in `http_api.md`),
`bodies` shapes their JSON, `params` parses their query parameters,
`run_reader` reads the runs for them and keeps what it decoded in a `cache`;
what a chart shows of a run is computed in `tb_weightnorm.read.charts`.
`static/` is the frontend's bundle.
TensorBoard finds the plugin by the entry point
`tb_weightnorm.plugin:WeightHealthLoader`.
"""

from tb_weightnorm.plugin.weight_health_plugin import WeightHealthLoader, WeightHealthPlugin

__all__ = ["WeightHealthLoader", "WeightHealthPlugin"]
