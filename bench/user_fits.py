"""What monitoring costs, timed the way a user times it: whole `fit()` calls,
tracing included.

Each repetition builds a fresh model, runs a short warm-up fit (10 steps)
and then a longer fit of `epochs` x `steps` steps, both with the same
callbacks (a new set per repetition), and times both from the call of `fit`
to its return. Plain training (no callback) runs in the same repetition, the
variants in turn, their order rotating from one repetition to the next so a
drift of the machine's speed favours none. The figures are medians over the
repetitions of per-repetition ratios against plain training:

- the long fit's ratio: what a user sees from a later `fit` of the same model
  (a notebook re-running `fit`, fine-tuning's second phase);
- the warm-up fit's extra seconds, against the seconds Keras' own first trace
  takes (a plain warm-up fit minus 10 plain steps): what the first `fit` of a
  model pays for the logging step's trace.

Run: python -m bench.user_fits [--quick] [--models small_cnn] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench import common, models, overhead  # noqa: E402

WARM_UP_STEPS = 10
STEPS = {"small_cnn": 200, "mobilenet_v2": 100, "mlp_200": 200}
EPOCHS = 2
# Each repetition traces every variant anew (a fresh model): tens of seconds
# on the large models.
REPEATS = {"small_cnn": 5, "mobilenet_v2": 3, "mlp_200": 3}


def _fit_seconds(model, x, y, steps: int, epochs: int, callbacks: List[keras.callbacks.Callback]) -> float:
    started = time.perf_counter()
    model.fit(
        x[: steps * models.BATCH], y[: steps * models.BATCH], batch_size=models.BATCH, epochs=epochs,
        shuffle=False, verbose=0, callbacks=callbacks,
    )
    return time.perf_counter() - started


def measure_model(
    key: str,
    variants: Sequence[str],
    *,
    repeats: int,
    steps: int,
    epochs: int,
    workdir: str,
    progress: Callable[[str], None] = lambda message: None,
) -> dict:
    """Per-repetition whole-fit times of plain training and of each variant."""
    x, y = models.data(key, steps)
    runs = ["plain"] + list(variants)
    seconds: Dict[str, Dict[str, List[float]]] = {r: {"warm_up": [], "fit": []} for r in runs}
    for repeat in range(repeats):
        order = runs[repeat % len(runs):] + runs[: repeat % len(runs)]
        for run in order:
            keras.utils.clear_session()
            model = models.compiled(key)
            if run == "plain":
                callbacks: List[keras.callbacks.Callback] = []
            else:
                log_dir = tempfile.mkdtemp(prefix=f"{key}_{run}_", dir=workdir)
                callbacks = overhead.VARIANTS[run][1](log_dir, x, y)
            seconds[run]["warm_up"].append(_fit_seconds(model, x, y, WARM_UP_STEPS, 1, callbacks))
            seconds[run]["fit"].append(_fit_seconds(model, x, y, steps, epochs, callbacks))
        progress(f"{key}: repetition {repeat + 1}/{repeats}")
    parameters = int(sum(int(np.prod(v.shape)) for v in models.compiled(key).trainable_variables))
    plain = seconds["plain"]
    step_s = statistics.median(plain["fit"]) / (epochs * steps)
    keras_trace = statistics.median(plain["warm_up"]) - WARM_UP_STEPS * step_s
    return {
        "name": models.MODELS[key].name,
        "parameters": parameters,
        "steps_per_fit": epochs * steps,
        "plain_ms_per_step": 1000 * step_s,
        "plain_fit_s": statistics.median(plain["fit"]),
        "keras_trace_s": keras_trace,
        "seconds": seconds,
        "variants": {v: common.paired_ratios(plain["fit"], seconds[v]["fit"]) for v in variants},
        "first_fit_extra_s": {
            v: statistics.median([m - b for b, m in zip(plain["warm_up"], seconds[v]["warm_up"])])
            for v in variants
        },
    }


def run(quick: bool = False, workdir: Optional[str] = None, model_keys: Optional[Sequence[str]] = None,
        repeats: Optional[int] = None, progress: Callable[[str], None] = lambda message: None) -> dict:
    """Measures every variant of `overhead.VARIANTS` on every model.

    Args:
        quick: one repetition of short fits on the small CNN (a smoke run).
        workdir: where the runs' logs go (a temporary folder if None).
        model_keys: a subset of `models.MODELS`.
        repeats: repetitions (default `REPEATS` of each model).
    """
    keys = list(model_keys or (["small_cnn"] if quick else list(models.MODELS)))
    workdir = workdir or tempfile.mkdtemp(prefix="bench_user_fits_")
    result = common.each_model(keys, quick, lambda key: measure_model(
        key,
        list(overhead.VARIANTS),
        repeats=1 if quick else (repeats or REPEATS[key]),
        steps=3 if quick else STEPS[key],
        epochs=EPOCHS,
        workdir=workdir,
        progress=progress,
    ))
    result["bandwidth_bytes_per_s"] = common.memory_bandwidth()
    return result


def markdown(result: dict) -> str:
    keys = list(result["models"])
    header = ["logging"] + [result["models"][k]["name"] for k in keys]
    rows = []
    for variant, (label, _) in overhead.VARIANTS.items():
        cells = [label]
        for key in keys:
            m = result["models"][key]
            r = m["variants"].get(variant)
            if r is None:
                cells.append("–")
                continue
            extra = m["first_fit_extra_s"][variant]
            share = extra / m["keras_trace_s"] if m["keras_trace_s"] > 0 else float("nan")
            cells.append(
                f"**{r['median']:.3f}×** ({r['min']:.3f}–{r['max']:.3f}); "
                f"first fit +{extra:.1f} s ({share:.0%} of Keras' trace)"
            )
        rows.append(cells)
    rows.append(["plain training, ms per step"] + [f"{result['models'][k]['plain_ms_per_step']:.1f}" for k in keys])
    rows.append(["Keras' own first trace, s"] + [f"{result['models'][k]['keras_trace_s']:.1f}" for k in keys])
    bandwidth = result.get("bandwidth_bytes_per_s")
    if bandwidth:
        # Weights, gradients, weights before the update and initial weights,
        # each read once, in float32.
        rows.append(
            ["bandwidth limit of every stat every step"]
            + [f"{1 + 16 * result['models'][k]['parameters'] / bandwidth / (result['models'][k]['plain_ms_per_step'] / 1000):.3f}×"
               f" ({result['models'][k]['parameters']:,} parameters)" for k in keys]
        )
    repeats = {len(result["models"][k]["seconds"]["plain"]["fit"]) for k in keys}
    steps = ", ".join(f"{result['models'][k]['name']} {result['models'][k]['steps_per_fit']}" for k in keys)
    return (
        common.markdown_table(header, rows)
        + f"\n\nMedian of {'/'.join(map(str, sorted(repeats)))} per-repetition ratios of a whole `fit()` call "
        + f"(min–max in brackets), the fit after a {WARM_UP_STEPS}-step warm-up fit of the same fresh model with "
        + "the same callbacks; then the warm-up fit's extra seconds over a plain one, against Keras' own first "
        + f"trace (a plain warm-up fit minus {WARM_UP_STEPS} plain steps); steps per timed fit: {steps}. "
        + "The bandwidth limit is the ratio if every stat of every step read the weights, gradients, weights "
        + "before the update and initial weights once each"
        + (f", at {bandwidth / 1e9:.0f} GB/s (one reduction over 256 MB)." if bandwidth else ".")
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--models", nargs="*", choices=list(models.MODELS))
    parser.add_argument("--variants", nargs="*", choices=list(overhead.VARIANTS))
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args(argv)
    if args.variants:
        for key in [k for k in overhead.VARIANTS if k not in args.variants]:
            del overhead.VARIANTS[key]
    result = run(args.quick, model_keys=args.models, repeats=args.repeats, progress=lambda m: print(m, file=sys.stderr))
    print(markdown(result))


if __name__ == "__main__":
    main()
