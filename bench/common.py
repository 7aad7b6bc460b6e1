"""What the benchmarks share: the machine they ran on, paired ratios, and the
results sections of BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")
RESULTS_DIR = os.path.join(ROOT, "bench", "results")


def machine() -> Dict[str, str]:
    """What the figures depend on: CPU, cores, memory, library versions."""
    import keras
    import tensorboard
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return {
        "cpu": cpu + _cpu_details(),
        "cores": str(os.cpu_count()),
        "memory": memory,
        "gpu": ", ".join(d.name for d in tf.config.list_physical_devices("GPU")) or "none",
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorboard": tensorboard.__version__,
    }


def _cpu_details() -> str:
    """Family and model, the vector units TensorFlow's kernels use, and
    whether oneDNN's kernels are on: a generic model name ("Intel Xeon
    Processor") says nothing of how fast a plain step is."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read().split("\n\n")[0]
    except OSError:
        return ""
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    units = [name for flag, name in (("avx512f", "AVX-512"), ("amx_tile", "AMX"), ("avx2", "AVX2")) if flag in flags]
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
    return (
        f" (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}; "
        f"{', '.join(units) or 'no AVX2'}; oneDNN kernels {'on' if onednn else 'off'})"
    )


def memory_bandwidth() -> float:
    """Bytes per second one reduction over a 256 MB float32 tensor reads
    (best of 5): the rate a statistic that reads a tensor once is bound by."""
    import time

    import tensorflow as tf

    x = tf.random.uniform([1 << 26])
    tf.reduce_sum(x).numpy()
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        tf.reduce_sum(x).numpy()
        best = min(best, time.perf_counter() - started)
    return 4 * (1 << 26) / best


def each_model(keys: Sequence[str], quick: bool, measure) -> dict:
    """{"machine", "quick", "models": {key: measure(key)}}: a benchmark's result."""
    result = {"machine": machine(), "quick": quick, "models": {}}
    for key in keys:
        result["models"][key] = measure(key)
    return result


def paired_ratios(baseline: Sequence[float], measured: Sequence[float]) -> Dict[str, float]:
    """Median, min and max of the per-pair ratios measured[i] / baseline[i]."""
    ratios = [m / b for b, m in zip(baseline, measured)]
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "pairs": len(ratios),
    }


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def save_result(name: str, result: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    return path


def load_result(name: str) -> Optional[dict]:
    path = os.path.join(RESULTS_DIR, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _markers(name: str) -> List[str]:
    return [f"<!-- results:{name} -->", f"<!-- /results:{name} -->"]


def update_section(markdown_path: str, name: str, body: str) -> None:
    """Replaces the text between the `results:<name>` markers of the file,
    leaving the prose around them as it is (appends the section if absent)."""
    start, end = _markers(name)
    text = open(markdown_path).read() if os.path.exists(markdown_path) else ""
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(markdown_path, "w") as f:
        f.write(text)


def cli(doc: str, run, markdown, argv=None) -> None:
    """The command line of a benchmark module: `--quick`, then its table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    print(markdown(run(args.quick)))
