"""Which variables a model has, and which layer each belongs to, in model order."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence, Tuple

import keras


@dataclasses.dataclass(frozen=True)
class TrackedVariable:
    variable: keras.Variable
    path: str
    layer: str


def _layer_of_paths(model: keras.Model) -> Dict[int, str]:
    """Maps id(variable) to the name users know its layer by.

    That is the layer's path inside the model without the outer model's own
    name ("dense", "head/dense_2"); an RNN cell's variables belong to the RNN
    layer that wraps it ("lstm", not "lstm/lstm_cell").
    """
    owner: Dict[int, str] = {}

    def visit(layer, prefix: str) -> None:
        for sub in layer._flatten_layers(include_self=False, recursive=False):
            if isinstance(sub, keras.Model):
                visit(sub, prefix + sub.name + "/")
                continue
            name = prefix + sub.name
            for variable in sub.variables:
                owner.setdefault(id(variable), name)

    visit(model, "")
    # Weights the model holds itself (add_weight in a subclassed model).
    for variable in model.variables:
        owner.setdefault(id(variable), model.name)
    return owner


def _fallback_layer(path: str) -> str:
    return path.rpartition("/")[0] or path


def tracked_variables(
    model_or_variables, *, trainable_only: bool = True
) -> List[TrackedVariable]:
    """The variables to log, each with its path and layer, deduplicated.

    Args:
        model_or_variables: a built `keras.Model` (or layer), or a list of
            variables (Keras or tf.Variable).
        trainable_only: for a model, only its trainable variables.
    """
    if isinstance(model_or_variables, keras.layers.Layer):
        model = model_or_variables
        if not model.built:
            raise ValueError(
                f"The model {model.name!r} is not built yet, so it has no weights to log. "
                "Build it first: call it on a batch, call `model.build(input_shape)`, "
                "or log after the first training step."
            )
        variables = model.trainable_variables if trainable_only else model.variables
        layers = _layer_of_paths(model) if isinstance(model, keras.Model) else {}
        default_layer = None if isinstance(model, keras.Model) else model.name
    elif isinstance(model_or_variables, (list, tuple)):
        variables, layers, default_layer = list(model_or_variables), {}, None
    else:
        raise TypeError(
            "Expected a keras.Model (or layer) or a list of variables; got "
            f"{type(model_or_variables).__name__}. Pass the model you train, or "
            "`model.trainable_variables`."
        )
    tracked: List[TrackedVariable] = []
    seen = set()
    for variable in variables:
        if not hasattr(variable, "shape") or not hasattr(variable, "dtype"):
            raise TypeError(
                f"Expected variables; got a {type(variable).__name__}. Pass a model or a "
                "list of its variables."
            )
        if id(variable) in seen:
            continue  # a shared layer's weights, listed once per use
        seen.add(id(variable))
        path = _variable_path(variable)
        layer = layers.get(id(variable)) or default_layer or _fallback_layer(path)
        tracked.append(TrackedVariable(variable, path, layer))
    return tracked


def _variable_path(variable) -> str:
    path = getattr(variable, "path", None)
    if path:
        return path
    name = getattr(variable, "name", "") or "variable"
    return name[:-2] if name.endswith(":0") else name


def names_of(tracked: Sequence[TrackedVariable]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(variable paths, layer names) of tracked variables, with unique paths."""
    paths, counts = [], {}
    for t in tracked:
        n = counts.get(t.path, 0)
        counts[t.path] = n + 1
        # tf.Variables may share a name; rows must not.
        paths.append(t.path if n == 0 else f"{t.path}#{n}")
    return tuple(paths), tuple(t.layer for t in tracked)
