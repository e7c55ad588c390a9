"""The config contract as the client checks it: every violation is refused with the field named."""

from __future__ import annotations

import copy

import pytest

from mlab_client import ConfigError
from mlab_client.config import SceneConfig

SHA = "a" * 64
GOOD = {
    "scene": "ctr",
    "revision": 3,
    "salt": "s4lt",
    "buckets": 10_000,
    "allocation": [[9000, 10000, 2], [0, 9000, 1]],
    "versions": [
        {"version": 1, "sha256": SHA, "size": 10, "format": "onnx", "url": "/a/1/"},
        {"version": 2, "sha256": "b" * 64, "size": 20, "format": "onnx", "url": "/a/2/"},
        {"version": 3, "sha256": "c" * 64, "size": 30, "format": "onnx", "url": "/a/3/"},
    ],
    "overrides": {"vip": 3},
}


def test_a_good_config_parses_with_ranges_sorted():
    config = SceneConfig.parse(GOOD, scene="ctr")
    assert config.allocation == ((0, 9000, 1), (9000, 10000, 2))
    assert config.used_versions == [1, 2, 3] and config.overrides == {"vip": 3}
    assert config.versions[2].sha256 == "b" * 64 and config.raw == GOOD


def _broken(path: str, value):
    data = copy.deepcopy(GOOD)
    target, *keys = path.split(".")
    if not keys:
        if value is ...:
            del data[target]
        else:
            data[target] = value
        return data
    container = data[target]
    for key in keys[:-1]:
        container = container[int(key)]
    container[keys[-1] if not keys[-1].isdigit() else int(keys[-1])] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("scene", "other", "scene"),
        ("revision", -1, "revision"),
        ("revision", "3", "revision"),
        ("salt", None, "salt"),
        ("buckets", 100, "buckets"),
        ("allocation", [], "allocation"),
        ("allocation", [[0, 10000]], "allocation[0]"),
        ("allocation", [[0, 10001, 1]], "allocation[0]"),
        ("allocation", [[0, 10000, 9]], "allocation[0]"),
        ("allocation", [[0, 6000, 1], [5000, 10000, 2]], "allocation"),
        ("allocation", [[0, 4000, 1], [5000, 10000, 2]], "allocation"),
        ("versions", [], "versions"),
        ("versions.0.version", 2, "versions[1].version"),  # the second of two v2s is the duplicate
        ("versions.0.version", -1, "versions[0].version"),
        ("versions.0.sha256", "A" * 64, "versions[0].sha256"),
        ("versions.0.size", -5, "versions[0].size"),
        ("versions.0.format", "pmml", "versions[0].format"),
        ("versions.0.url", "", "versions[0].url"),
        ("overrides", {"vip": 7}, "overrides['vip']"),
        ("overrides", ["vip"], "overrides"),
    ],
)
def test_each_violation_names_its_field(path, value, field):
    with pytest.raises(ConfigError) as caught:
        SceneConfig.parse(_broken(path, value), scene="ctr")
    assert caught.value.field == field and str(caught.value).startswith(f"config {field}:")


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError, match="not a JSON object"):
        SceneConfig.parse([GOOD], scene="ctr")
