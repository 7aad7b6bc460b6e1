"""`tb-weightnorm export` and `tb_weightnorm.export_csv`: CSV files of real
training logs, read back by pandas with the same values, and nothing written
when something is wrong."""

import json
import os
import stat
import subprocess
import sysconfig

import numpy as np
import pandas as pd
import pytest

import tb_weightnorm
from tb_weightnorm import cli
from tb_weightnorm.read import export

# A run and a layer whose names a CSV writer must quote, and a variable whose
# stats overflow to +inf (two weights of 3e38: l1, l2, mean and std are inf)
# though it holds no NaN or Inf itself.
ODD_RUN_DIR = 'run, "ö"'
ODD_RUN = ODD_RUN_DIR + "/train"
ODD_LAYER = 'dense, "ünï"'
BINS = 4
# One kernel element of ODD_LAYER turns NaN before this 0-based batch; the
# next step's weights and gradients are all NaN, so their histograms have no
# finite value.
NAN_AT_BATCH = 3
ODD_SIZES = {
    f"odd/{ODD_LAYER}/kernel": 12,
    f"odd/{ODD_LAYER}/bias": 3,
    "odd/spare/reserve": 2,
    "odd/out/kernel": 3,
    "odd/out/bias": 1,
}
# A run without histograms.
PLAIN_RUN = "plain/train"

# How to read the files back: an empty field is NaN, and no name (a layer
# called "NA" or "nan") is taken for one.
READ = dict(keep_default_na=False, na_values=[""])


def _train_odd(logdir):
    import keras

    keras.utils.set_random_seed(5)

    class Spare(keras.layers.Layer):
        """A variable the loss never reaches, kept at 3e38."""

        def build(self, shape):
            self.reserve = self.add_weight(
                shape=(2,), initializer=keras.initializers.Constant(3e38), name="reserve"
            )

        def call(self, x):
            return x

    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="relu", name=ODD_LAYER),
            Spare(name="spare"),
            keras.layers.Dense(1, name="out"),
        ],
        name="odd",
    )
    # TensorFlow refuses commas and quotes in the name scopes a compiled
    # train step opens; an eager one opens none.
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", run_eagerly=True)

    class Poison(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == NAN_AT_BATCH:
                kernel = model.get_layer(ODD_LAYER).kernel
                value = kernel.numpy()
                value[0, 0] = np.nan
                kernel.assign(value)

    rng = np.random.default_rng(5)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = rng.normal(size=(48, 1)).astype("float32")
    health = tb_weightnorm.WeightHealthCallback(
        os.path.join(logdir, ODD_RUN_DIR), every_n_steps=1, histogram_every_n_steps=1, histogram_bins=BINS,
        report=None,
    )
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[Poison(), health])


def _train_plain(logdir):
    import keras

    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="hidden"), keras.layers.Dense(1, name="out")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    health = tb_weightnorm.WeightHealthCallback(
        os.path.join(logdir, "plain"), every_n_steps=2, histogram_every_n_steps=0, report=None
    )
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[health])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export_logs")
    _train_odd(str(root))
    _train_plain(str(root))
    return root


def _main(capsys, *args):
    status = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _same(read_back, expected):
    assert list(read_back.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(
        read_back.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False, check_exact=True
    )


# -- the files read back ----------------------------------------------------------


def test_wide_norms_csv_reads_back_as_load_returns_it(logdir, tmp_path, capsys):
    path = tmp_path / "norms.csv"
    status, out, err = _main(capsys, "export", logdir, "--csv", path, "--layout", "wide")
    assert (status, out, err) == (0, "", "")
    expected = tb_weightnorm.load(str(logdir), layout="wide")
    # What makes a round trip hard is in there: names to quote, infinities, and
    # NaN where a stat was not measured.
    assert {ODD_RUN, PLAIN_RUN} == set(expected.run)
    assert ODD_LAYER in set(expected.layer)
    assert np.isposinf(expected["weight/l2"]).any()
    assert expected["gradient/l2"].isna().any()
    assert list(expected.columns[:5]) == ["run", "step", "wall_time", "layer", "variable"]
    read_back = pd.read_csv(path, **READ)
    _same(read_back, expected)
    assert read_back["step"].dtype == np.int64
    # One row per run, step and variable.
    assert not read_back.duplicated(["run", "step", "variable"]).any()


def test_csv_is_by_default_exactly_what_load_returns(logdir, tmp_path, capsys):
    path = tmp_path / "long.csv"
    assert _main(capsys, "export", logdir, "--csv", path)[0] == 0
    expected = tb_weightnorm.load(str(logdir))
    assert np.isposinf(expected.value).any()
    _same(pd.read_csv(path, **READ), expected)


def test_wide_and_long_hold_the_same_numbers(logdir):
    wide = tb_weightnorm.load(str(logdir), layout="wide")
    long = tb_weightnorm.load(str(logdir))
    melted = wide.melt(id_vars=export.KEYS, var_name="name", value_name="value").dropna(subset=["value"])
    melted[["kind", "stat"]] = melted.name.str.split("/", n=1, expand=True)
    keys = ["run", "step", "variable", "kind", "stat"]
    melted = melted[export.COLUMNS].sort_values(keys).reset_index(drop=True)
    _same(melted, long.sort_values(keys).reset_index(drop=True))


def test_histograms_csv_counts_every_value_once(logdir, tmp_path, capsys):
    path = tmp_path / "histograms.csv"
    assert _main(capsys, "export", logdir, "--histograms", path)[0] == 0
    expected = tb_weightnorm.load_histograms(str(logdir))
    read_back = pd.read_csv(path, **READ)
    _same(read_back, expected)
    assert set(read_back.run) == {ODD_RUN}  # the plain run logged none
    one = ["step", "variable", "kind"]
    # Every value of a tensor is in exactly one row: a finite bucket, or the
    # NaN, -Inf or +Inf row.
    sizes = read_back.groupby(one)["count"].sum().reset_index()
    weights = sizes[sizes.kind == "weight"]
    assert (weights["count"] == weights.variable.map(ODD_SIZES)).all()
    finite = read_back[np.isfinite(read_back.lower)]
    assert (finite.groupby(one).size() == BINS).all()
    # The finite buckets span [min, max] of the weights, as the norm table saw them.
    norms = tb_weightnorm.load(str(logdir), layout="wide")
    spans = finite[finite.kind == "weight"].groupby(["step", "variable"]).agg(low=("lower", "min"), high=("upper", "max"))
    seen = norms.set_index(["step", "variable"]).loc[spans.index]
    np.testing.assert_allclose(spans.low, seen["weight/min"], rtol=1e-6)
    np.testing.assert_allclose(spans.high, seen["weight/max"], rtol=1e-6)
    # From the NaN on, the kernel has no finite value: only its NaN/Inf rows.
    kernel = read_back[(read_back.variable == f"odd/{ODD_LAYER}/kernel") & (read_back.kind == "weight")]
    after = kernel[kernel.step == NAN_AT_BATCH + 1]
    assert len(after) == 3 and after.lower.isna().sum() == 1
    assert list(after.lower.iloc[1:]) == [-np.inf, np.inf]
    assert after["count"].iloc[0] >= 1


def test_findings_csv_holds_what_report_says(logdir, tmp_path, capsys):
    path = tmp_path / "findings.csv"
    assert _main(capsys, "export", logdir, "--findings", path, "--threshold", "sustain=3")[0] == 0
    read_back = pd.read_csv(path, **READ)
    _same(read_back, tb_weightnorm.load_findings(str(logdir), thresholds=_thresholds(sustain=3)))
    _, out, _ = _main(capsys, "report", logdir, "--json", "--threshold", "sustain=3")
    reported = json.loads(out)
    assert reported and len(read_back) == len(reported)
    assert "nonfinite" in set(read_back.rule)
    for row, finding in zip(read_back.to_dict("records"), reported):
        for field in ("run", "rule", "severity", "layer", "variable", "first_step", "last_step", "message", "ongoing"):
            assert row[field] == finding[field], field


def _thresholds(**changes):
    from tb_weightnorm import diagnosis

    return diagnosis.Thresholds().replace(**changes)


def test_run_filter_to_standard_output_from_the_console_script(logdir):
    script = os.path.join(sysconfig.get_path("scripts"), "tb-weightnorm")
    result = subprocess.run(
        [script, "export", str(logdir), "--csv", "-", "--run", "plain*"],
        capture_output=True, text=True, encoding="utf-8", timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    import io

    read_back = pd.read_csv(io.StringIO(result.stdout), **READ)
    _same(read_back, tb_weightnorm.load(str(logdir), runs=["plain*"]))
    assert set(read_back.run) == {PLAIN_RUN}


def test_python_api_writes_the_same_files(logdir, tmp_path):
    tb_weightnorm.export_csv(
        logdir, norms=tmp_path / "n.csv", findings=tmp_path / "f.csv", runs=["run*"]
    )
    _same(pd.read_csv(tmp_path / "n.csv", **READ), tb_weightnorm.load(str(logdir), runs=["run*"]))
    _same(pd.read_csv(tmp_path / "f.csv", **READ), tb_weightnorm.load_findings(str(logdir), runs=["run*"]))
    with pytest.raises(ValueError, match="nothing to export"):
        tb_weightnorm.export_csv(logdir)


# -- errors: said clearly, and nothing half-written ----------------------------------


def test_missing_logdir_is_exit_2_and_writes_nothing(tmp_path, capsys):
    status, out, err = _main(capsys, "export", tmp_path / "nowhere", "--csv", tmp_path / "n.csv")
    assert status == 2 and out == ""
    assert "No log directory at" in err and "WeightHealthCallback" in err
    assert os.listdir(tmp_path) == []


def test_logdir_without_weight_health_data_is_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("no events here")
    status, _, err = _main(capsys, "export", tmp_path, "--csv", tmp_path / "n.csv")
    assert status == 2
    assert "No Weight Health data" in err and "tb_weightnorm.log" in err
    assert os.listdir(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize(
    "args,complaint",
    [
        ((), "say what to export"),
        (("--csv", "-", "--findings", "-"), "only one of"),
        (("--csv", "{out}/same.csv", "--findings", "{out}/same.csv"), "same file"),
        (("--csv", "{out}"), "is a directory"),
        (("--csv", "{out}/no/such/folder.csv"), "cannot write"),
        (("--csv", "{out}/a_file/x.csv"), "cannot write"),
        (("--run", "nothing*", "--csv", "{out}/n.csv"), "no run under"),
        (("--layout", "tall", "--csv", "{out}/n.csv"), "invalid choice"),
    ],
)
def test_bad_arguments_are_exit_2_naming_the_problem(logdir, tmp_path, capsys, args, complaint):
    (tmp_path / "a_file").write_text("a file, not a folder")
    status, out, err = _main(capsys, "export", logdir, *[a.format(out=tmp_path) for a in args])
    assert status == 2 and out == ""
    assert complaint in err
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_a_failed_export_leaves_earlier_files_as_they_were(logdir, tmp_path, capsys):
    norms = tmp_path / "norms.csv"
    norms.write_text("an earlier export\n")
    # The plain run has norm tables but no histograms: the norms could be
    # written, but the command as a whole cannot do what it was asked.
    status, _, err = _main(
        capsys, "export", logdir, "--run", "plain*", "--csv", norms, "--histograms", tmp_path / "h.csv"
    )
    assert status == 2
    assert "no histograms" in err and "histogram_every_n_steps" in err
    assert norms.read_text() == "an earlier export\n"
    assert sorted(os.listdir(tmp_path)) == ["norms.csv"]  # no temporary file left behind
    # A second file that cannot be written stops the first one too.
    status, _, err = _main(capsys, "export", logdir, "--csv", norms, "--findings", tmp_path / "none" / "f.csv")
    assert status == 2 and "cannot write" in err
    assert norms.read_text() == "an earlier export\n"


def test_files_get_the_usual_permissions(logdir, tmp_path, capsys):
    fresh = tmp_path / "fresh.csv"
    kept = tmp_path / "kept.csv"
    kept.write_text("old")
    os.chmod(kept, 0o640)
    assert _main(capsys, "export", logdir, "--csv", fresh, "--findings", kept)[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o640
    assert kept.read_text().startswith("run,rule,severity")
