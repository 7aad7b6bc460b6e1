"""tb_weightnorm: the health of a network's weights and gradients in TensorBoard.

The logging API imports TensorFlow; the package itself does not, so that
TensorBoard can load the plugin quickly (and without TensorFlow installed).
"""

import importlib

__all__ = [
    "LogOptions", "WeightHealthAlert", "WeightHealthCallback", "export_csv", "load", "load_findings",
    "load_histograms", "log", "snapshots",
]
__version__ = "0.1.0"

_LAZY = {
    "WeightHealthCallback": "tb_weightnorm.writer.callback",
    "log": "tb_weightnorm.writer.custom_loop",
    "load": "tb_weightnorm.read.export",
    "load_histograms": "tb_weightnorm.read.export",
    "load_findings": "tb_weightnorm.read.export",
    "export_csv": "tb_weightnorm.read.csv_export",
    "LogOptions": "tb_weightnorm.writer.options",
    "WeightHealthAlert": "tb_weightnorm.writer.alerts",
}
# Submodules reachable as attributes without importing them first.
_SUBMODULES = ("snapshots",)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tb_weightnorm.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tb_weightnorm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
