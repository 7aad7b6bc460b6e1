import subprocess
import sys

import pytest
from tensorboard.compat.proto import summary_pb2

from tb_weightnorm import schema
from tb_weightnorm.wire import metadata

NAMES = schema.NormTableNames(
    variables=("m/dense/kernel", "m/dense/bias"),
    layers=("dense", "dense"),
    stats=("weight/l2", "gradient/l2"),
)


def test_norm_table_metadata_round_trip():
    md = metadata.norm_table_metadata(NAMES)
    assert md.plugin_data.plugin_name == "weight_health"
    assert md.data_class == summary_pb2.DATA_CLASS_TENSOR
    assert metadata.norm_table_names(md.plugin_data.content) == NAMES


def test_light_metadata_omits_names_but_keeps_data_class():
    full = metadata.norm_table_metadata(NAMES)
    light = metadata.norm_table_metadata(NAMES, include_names=False)
    assert light.data_class == summary_pb2.DATA_CLASS_TENSOR
    assert light.plugin_data.plugin_name == "weight_health"
    assert metadata.norm_table_names(light.plugin_data.content) is None
    assert light.ByteSize() < full.ByteSize() / 2


def test_tag_changes_with_names():
    other = schema.NormTableNames(NAMES.variables[:1], NAMES.layers[:1], NAMES.stats)
    assert metadata.norm_table_tag(NAMES).startswith(metadata.NORM_TABLE_TAG_PREFIX)
    assert metadata.norm_table_tag(NAMES) != metadata.norm_table_tag(other)
    assert metadata.norm_table_tag(NAMES) == metadata.norm_table_tag(schema.NormTableNames(*map(tuple, (NAMES.variables, NAMES.layers, NAMES.stats))))


def test_newer_version_and_garbage_are_refused_with_a_reason():
    from tb_weightnorm.wire.proto import plugin_data_pb2

    newer = plugin_data_pb2.WeightHealthPluginData(version=metadata.PROTO_VERSION + 1)
    with pytest.raises(metadata.UnreadableMetadata, match="newer tb_weightnorm"):
        metadata.parse_plugin_data(newer.SerializeToString())
    with pytest.raises(metadata.UnreadableMetadata):
        metadata.parse_plugin_data(b"\xff\xff\xff\xff")


def test_mismatched_names_are_refused():
    with pytest.raises(ValueError, match="layer names"):
        schema.NormTableNames(("a", "b"), ("x",), ("weight/l2",))


def test_all_stat_names():
    names = schema.all_stat_names()
    assert names[:9] == tuple(f"weight/{s}" for s in schema.TENSOR_STATS)
    assert names[9] == "weight/dist_init"
    assert names[10:19] == tuple(f"gradient/{s}" for s in schema.TENSOR_STATS)
    assert names[19] == "gradient/dead_fraction"
    assert names[-2:] == ("update/l2", "update/ratio")
    assert schema.table_stat_names(gradients=False, updates=False, dist_init=False) == names[:9]


def test_select_stats_by_pattern():
    available = schema.all_stat_names()
    assert schema.select_stats(available, ["*/l2", "update/ratio"]) == (
        "weight/l2", "gradient/l2", "update/l2", "update/ratio")
    assert schema.select_stats(available, None) == available
    with pytest.raises(ValueError, match="gradient/l7"):
        schema.select_stats(available, ["gradient/l7"])


@pytest.mark.parametrize("protobuf", ["6.31.1", "7.*"])
def test_generated_code_imports_on_every_supported_protobuf(tmp_path, protobuf):
    """tensorflow and tensorboard 2.21 accept protobuf >=6.31.1,<8: the committed
    plugin_data_pb2.py must import on the oldest and the newest of them."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), f"protobuf=={protobuf}"],
        check=True,
    )
    import tb_weightnorm.wire.proto as proto_pkg
    import os

    proto_dir = os.path.dirname(proto_pkg.__file__)
    code = (
        "import sys, importlib.util, google.protobuf as pb;"
        f"spec = importlib.util.spec_from_file_location('plugin_data_pb2', {os.path.join(proto_dir, 'plugin_data_pb2.py')!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "d = m.WeightHealthPluginData(version=1); d.norm_table.stats.append('weight/l2');"
        "assert m.WeightHealthPluginData.FromString(d.SerializeToString()) == d;"
        "print(pb.__version__)"
    )
    result = subprocess.run(
        # -S: no site-packages, so only the protobuf in the target is found.
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    version = result.stdout.strip()
    assert version.startswith(protobuf.rstrip("*"))
