"""Config dataclasses: tcnn/instant-ngp JSON in and out, validation errors that name the key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ngp_sdk.core.config import HashGridConfig, OptimizerConfig, load_config_file, strip_json_comments
from ngp_sdk.core.errors import ConfigError
from ngp_sdk.image.config import ImageConfig

# instant-ngp's configs/image/base.json (comments included), with T = 2^19
INGP_IMAGE_BASE = """{
  "loss": {"otype": "L2"},
  "optimizer": {
    // "otype": "Ema", "decay": 0.95, "nested": {
      "otype": "ExponentialDecay", "decay_start": 20000, "decay_interval": 10000, "decay_base": 0.33,
      "nested": {"otype": "Adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.99, "epsilon": 1e-15,
                 "l2_reg": 1e-6}
    /* } */
  },
  "encoding": {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19,
               "base_resolution": 16},
  "network": {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
              "n_neurons": 64, "n_hidden_layers": 2}
}"""


def test_instant_ngp_image_config_loads(tmp_path):
    p = tmp_path / "base.json"
    p.write_text(INGP_IMAGE_BASE)
    cfg = ImageConfig.from_dict(load_config_file(p))
    assert cfg.encoding.log2_hashmap_size == 19 and cfg.encoding.per_level_scale == 2.0
    assert cfg.network.n_neurons == 64 and cfg.network.n_hidden_layers == 2
    assert cfg.optimizer.ema is None and cfg.optimizer.decay.decay_start == 20000
    assert cfg.optimizer.adam.epsilon == 1e-15 and cfg.loss.otype == "L2"
    # the built-in default is exactly this file except for the finer level growth (documented deviation)
    assert cfg == dataclasses.replace(ImageConfig(), encoding=HashGridConfig())
    assert ImageConfig().encoding.per_level_scale == 1.5


def test_shipped_base_config_is_the_default():
    from importlib.resources import files

    path = files("ngp_sdk") / "configs" / "image" / "base.json"
    assert ImageConfig.from_dict(load_config_file(str(path))) == ImageConfig()


def test_round_trip_through_json():
    cfg = ImageConfig.from_dict({
        "optimizer": {"otype": "Ema", "decay": 0.9, "nested": {"otype": "Adam", "learning_rate": 3e-3}},
        "loss": {"otype": "RelativeL2"},
        "network": {"n_neurons": 32, "n_hidden_layers": 1, "output_activation": "Sigmoid"},
    })
    again = ImageConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.optimizer.ema.decay == 0.9 and again.optimizer.decay is None
    assert again.network.layout(32, 3).output_activation == "sigmoid"


@pytest.mark.parametrize(
    "data, message",
    [
        ({"encoding": {"n_levls": 16}}, "unknown key 'n_levls'"),
        ({"encodings": {}}, "unknown key 'encodings'"),
        ({"encoding": {"n_features_per_level": 3}}, "n_features_per_level"),
        ({"encoding": {"n_levels": "16"}}, "expected an integer"),
        ({"network": {"n_neurons": 48}}, "n_neurons"),
        ({"network": {"output_activation": "Tanh"}}, "output_activation"),
        ({"loss": {"otype": "L3"}}, "loss.otype"),
        ({"optimizer": {"otype": "SGD"}}, "unsupported otype 'SGD'"),
        ({"optimizer": {"otype": "Ema", "decay": 0.9}}, "needs a 'nested'"),
        ({"optimizer": {"otype": "Adam", "learning_rate": -1}}, "learning_rate"),
        ({"training": {"batch_size": 3}}, "batch_size"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_configs_raise_config_error(data, message):
    with pytest.raises(ConfigError, match=message):
        ImageConfig.from_dict(data)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(bad)


def test_comment_stripping_keeps_strings():
    assert json.loads(strip_json_comments('{"a": "http://x//y" // c\n, "b": 1 /* z */}')) == {
        "a": "http://x//y", "b": 1}


def test_optimizer_chain_serialises_nested():
    d = OptimizerConfig.from_dict({"otype": "Ema", "decay": 0.95, "nested": {
        "otype": "ExponentialDecay", "decay_start": 5, "decay_interval": 2, "decay_base": 0.5,
        "nested": {"otype": "Adam"}}}).to_dict()
    assert d["otype"] == "Ema" and d["nested"]["otype"] == "ExponentialDecay"
    assert d["nested"]["nested"]["otype"] == "Adam"
