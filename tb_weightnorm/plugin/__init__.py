"""The TensorBoard plugin: the "Weight Health" tab's backend.

`weight_health_plugin` holds the routes (documented in `http_api.md`),
`bodies` shapes their JSON, `params` parses their query parameters, `cache`
keeps what was decoded from a run; `static/` is the frontend's bundle.
TensorBoard finds the plugin by the entry point
`tb_weightnorm.plugin:WeightHealthLoader`.
"""

from tb_weightnorm.plugin.weight_health_plugin import WeightHealthLoader, WeightHealthPlugin

__all__ = ["WeightHealthLoader", "WeightHealthPlugin"]
