"""Which rows a norm table has: the model's variables in model order, each with
its layer, and recurrent kernels split into one row per gate."""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

# Keras lays the gates of a recurrent kernel side by side on its last axis.
_GATES = {
    keras.layers.LSTMCell: ("input", "forget", "cell", "output"),
    keras.layers.GRUCell: ("update", "reset", "candidate"),
}


@dataclasses.dataclass(frozen=True)
class TrackedVariable:
    """One row of the table: a variable, or one gate of a recurrent variable.

    Attributes:
        variable: the Keras (or tf) variable.
        path: the row's name: the variable's path, plus `[gate]` for a gate.
        layer: the layer users know the variable by.
        trainable: whether the optimizer updates it (others are logged as
            weights only).
        part: for a gate, its (start, stop) on the variable's last axis.
        has_units: whether the last axis holds output units whose incoming
            weights can all get a zero gradient (kernels; not biases or
            embedding tables).
    """

    variable: object
    path: str
    layer: str
    trainable: bool = True
    part: Optional[Tuple[int, int]] = None
    has_units: bool = False

    def slice_of(self, tensor):
        """The part of a value of this variable (or of its gradient) this row is about."""
        if self.part is None:
            return tensor
        start, stop = self.part
        return tensor[..., start:stop]


def _layer_names(model: keras.layers.Layer) -> Dict[int, str]:
    """Maps id(variable) to the name users know its layer by.

    That is the path, inside the model and without the outer model's own
    name (a layer that is not a model keeps its own), of the innermost layer
    that holds the variable: "dense",
    "head/dense_2", and inside a custom layer its parts apart
    ("transformer_block/multi_head_attention/query",
    "transformer_block/ffn/dense"), so each is a layer of its own in the
    heatmap and the rules. An RNN cell's variables belong to the RNN layer
    that wraps it ("lstm", not "lstm/lstm_cell"): the cell is how Keras
    builds the layer, not a part users put there.
    """
    owner: Dict[int, str] = {}

    def visit(layer, prefix: str) -> None:
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            name = prefix + sub.name
            if not isinstance(sub, keras.layers.RNN):
                visit(sub, name + "/")  # its parts claim their own variables first
            for variable in sub.variables:
                owner.setdefault(id(variable), name)

    if not isinstance(model, keras.layers.RNN):
        visit(model, "" if isinstance(model, keras.Model) else model.name + "/")
    # Weights the model holds itself (add_weight in a subclassed model).
    for variable in model.variables:
        owner.setdefault(id(variable), model.name)
    return owner


def _gate_cells(layer: keras.layers.Layer) -> Dict[int, Tuple[Tuple[str, ...], int]]:
    """Maps id(variable) of recurrent cells to (gate names, units)."""
    cells: Dict[int, Tuple[Tuple[str, ...], int]] = {}
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        for cell_type, gates in _GATES.items():
            if isinstance(sub, cell_type):
                for variable in sub.variables:
                    cells[id(variable)] = (gates, int(sub.units))
    return cells


def _no_units_layers(layer: keras.layers.Layer) -> set:
    """Variables whose last axis is not output units: embedding tables."""
    ids = set()
    for sub in layer._flatten_layers(include_self=True, recursive=True):
        if isinstance(sub, keras.layers.Embedding):
            ids.update(id(v) for v in sub.variables)
    return ids


def _matches(patterns: Sequence[str], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns for name in names)


def tracked_variables(
    model_or_variables,
    *,
    trainable_only: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    split_gates: bool = True,
) -> List[TrackedVariable]:
    """The rows to log, in model order, deduplicated (shared layers once).

    Args:
        model_or_variables: a built `keras.Model` (or layer), or a list of
            variables (Keras or tf.Variable).
        trainable_only: for a model, only its trainable variables; otherwise
            also its non-trainable float variables (BatchNormalization's moving
            statistics), logged as weights only.
        include: glob patterns (`fnmatch`) on the layer name or the variable
            path; if given, only matching variables are logged.
        exclude: glob patterns; matching variables are not logged.
        split_gates: one row per gate for LSTM and GRU variables.

    Raises:
        ValueError: for a model that is not built, or if nothing is left.
        TypeError: for something that is neither a model nor variables.
    """
    if isinstance(model_or_variables, keras.layers.Layer):
        model = model_or_variables
        # Keras never marks built a model without `call` (a VAE or GAN whose
        # `train_step` calls its sub-models), though its variables exist:
        # what matters is whether they do.
        if not model.built and not model.variables:
            raise ValueError(
                f"The model {model.name!r} is not built yet, so it has no weights to log. "
                "Build it first: call it on a batch, call `model.build(input_shape)`, "
                "or log after the first training step."
            )
        if trainable_only:
            variables = list(model.trainable_variables)
        else:
            variables = [v for v in model.variables if _is_float(v)]
        layers = _layer_names(model)
        gates = _gate_cells(model) if split_gates else {}
        no_units = _no_units_layers(model)
        trainable_ids = {id(v) for v in model.trainable_variables}
    elif isinstance(model_or_variables, (list, tuple)):
        variables, layers, gates, no_units = list(model_or_variables), {}, {}, set()
        trainable_ids = {id(v) for v in variables if getattr(v, "trainable", True)}
    else:
        raise TypeError(
            "Expected a keras.Model (or layer) or a list of variables; got "
            f"{type(model_or_variables).__name__}. Pass the model you train, or "
            "`model.trainable_variables`."
        )
    rows: List[TrackedVariable] = []
    seen = set()
    for variable in variables:
        if not isinstance(variable, (tf.Variable, keras.Variable)):
            # A tensor or an array is a value: it has no identity across
            # steps to take an update or a distance from the start from.
            raise TypeError(
                f"Expected variables (tf.Variable or keras.Variable); got a {type(variable).__name__}. "
                "Pass a model or a list of its variables, such as `model.trainable_variables`."
            )
        if id(variable) in seen:
            continue  # a shared layer's weights, listed once per use
        seen.add(id(variable))
        path = _variable_path(variable)
        layer = layers.get(id(variable)) or path.rpartition("/")[0] or path
        if include and not _matches(include, layer, path):
            continue
        if exclude and _matches(exclude, layer, path):
            continue
        trainable = id(variable) in trainable_ids
        has_units = len(variable.shape) >= 2 and id(variable) not in no_units
        gate_info = gates.get(id(variable))
        shape = tuple(variable.shape)
        if gate_info and shape and shape[-1] == len(gate_info[0]) * gate_info[1]:
            names, units = gate_info
            for g, gate in enumerate(names):
                rows.append(
                    TrackedVariable(
                        variable, f"{path}[{gate}]", layer, trainable, (g * units, (g + 1) * units), has_units
                    )
                )
        else:
            rows.append(TrackedVariable(variable, path, layer, trainable, None, has_units))
    if not rows:
        raise ValueError(
            "No variables left to log: the model has none, or include/exclude "
            f"(include={list(include)}, exclude={list(exclude)}) filtered them all out."
        )
    return rows


def rows_for(model_or_variables, options) -> List[TrackedVariable]:
    """`tracked_variables` with the choices of a `LogOptions`."""
    return tracked_variables(
        model_or_variables,
        trainable_only=options.trainable_only,
        include=options.include,
        exclude=options.exclude,
        split_gates=options.split_gates,
    )


def _is_float(variable) -> bool:
    dtype = getattr(variable, "dtype", None)
    name = getattr(dtype, "name", None) or str(dtype)
    return "float" in name


def _variable_path(variable) -> str:
    path = getattr(variable, "path", None)
    if path:
        return path
    name = getattr(variable, "name", "") or "variable"
    return name[:-2] if name.endswith(":0") else name


def names_of(tracked: Sequence[TrackedVariable]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(row names, layer names) of tracked rows, with unique row names."""
    paths, counts = [], {}
    for t in tracked:
        n = counts.get(t.path, 0)
        counts[t.path] = n + 1
        # tf.Variables may share a name; rows must not.
        paths.append(t.path if n == 0 else f"{t.path}#{n}")
    return tuple(paths), tuple(t.layer for t in tracked)


@dataclasses.dataclass(frozen=True)
class ConvKernel:
    """A convolution kernel to draw as a grid of filters."""

    variable: object
    path: str
    layer: str
    kind: str  # a kernel_grid.CONV_KINDS name
    rgb_input: bool


def _conv_kind(layer) -> Optional[Tuple[str, str]]:
    """(kind, attribute holding the kernel) of a conv layer, else None."""
    L = keras.layers
    # Transposed convolutions subclass nothing here, but are checked first so
    # that a subclass relation in a later Keras cannot misfile them.
    for cls, kind, attr in (
        (L.Conv2DTranspose, "Conv2DTranspose", "kernel"),
        (L.SeparableConv2D, "SeparableConv2D", "depthwise_kernel"),
        (L.DepthwiseConv2D, "DepthwiseConv2D", "kernel"),
        (L.Conv1D, "Conv1D", "kernel"),
        (L.Conv2D, "Conv2D", "kernel"),
        (L.Conv3D, "Conv3D", "kernel"),
    ):
        if isinstance(layer, cls):
            return kind, attr
    return None


def conv_kernels(
    model, *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> List[ConvKernel]:
    """The conv kernels of a model, in model order, filtered like the rows.

    The first conv layer gets `rgb_input` when its input has 3 channels: its
    filters are drawn as colour patches.
    """
    if not isinstance(model, keras.layers.Layer):
        return []
    names = _layer_names(model)
    kernels: List[ConvKernel] = []
    seen = set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        found = _conv_kind(layer)
        if found is None or not layer.built:
            continue
        kind, attr = found
        variable = getattr(layer, attr, None)
        if variable is None or id(variable) in seen:
            continue
        first = not seen
        seen.add(id(variable))
        path = _variable_path(variable)
        name = names.get(id(variable), layer.name)
        if include and not _matches(include, name, path):
            continue
        if exclude and _matches(exclude, name, path):
            continue
        in_axis = -1 if kind == "Conv2DTranspose" else -2
        rgb = first and int(variable.shape[in_axis]) == 3
        kernels.append(ConvKernel(variable, path, name, kind, rgb))
    return kernels
