"""A built wheel carries the frontend bundle and the entry point: installing it
needs no Node.js, and TensorBoard finds the plugin."""

import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _see_the_current_site_packages(python: Path) -> None:
    """Makes the venv of `python` see this interpreter's installed packages
    (TensorFlow, TensorBoard), after its own.

    `venv --system-site-packages` would show it the *base* interpreter's,
    which inside a virtual or conda environment has none of them. The folders
    go in as plain paths, so their own .pth files (an editable install of
    tb_weightnorm among them) are not run: only the wheel can answer.
    """
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        ours.add(site.getusersitepackages())
    folders = sorted(f for f in ours if Path(f).is_dir())
    target = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(target) / "_tb_weightnorm_test_parent_site.pth").write_text("\n".join(folders) + "\n")


def test_wheel_holds_the_bundle_and_the_entry_point(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
    )
    (wheel,) = tmp_path.glob("tb_weightnorm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "tb_weightnorm/plugin/static/index.js" in names
        assert "tb_weightnorm/wire/proto/plugin_data_pb2.py" in names
        assert "tb_weightnorm/wire/proto/plugin_data.proto" in names
        assert "tb_weightnorm/plugin/http_api.md" in names
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(entry_points).decode()
        assert "[tensorboard_plugins]" in text
        assert "weight_health = tb_weightnorm.plugin:WeightHealthLoader" in text
        bundle = archive.read("tb_weightnorm/plugin/static/index.js")
    assert b"render" in bundle

    # Installed into a fresh environment with no Node.js on its PATH, the
    # plugin loads and serves its bundle from the installed package.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    _see_the_current_site_packages(python)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], check=True)
    code = (
        "import importlib.metadata as m, pathlib, tb_weightnorm.plugin as p, tb_weightnorm.plugin.weight_health_plugin as w;"
        "ep = [e for e in m.entry_points(group='tensorboard_plugins') if e.name == 'weight_health'][0];"
        "assert ep.load() is p.WeightHealthLoader;"
        "print(w._STATIC / 'index.js')"
    )
    result = subprocess.run(
        [str(python), "-c", code], cwd=tmp_path, env={"PATH": str(venv / "bin")}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    bundle_path = Path(result.stdout.strip())
    assert bundle_path.is_file() and str(venv) in str(bundle_path)
