"""The YAML loader: bundled nets load, and every error names file, key path and expectation."""
import copy

import pytest
import yaml

from chipsim.config import ConfigError, load_net, parse_net
from chipsim.models import MODELS_DIR, bundled_nets, resolve_net

BASE = {
    "name": "t", "input_shape": [1, 4, 4], "time_steps": 4,
    "layers": [{"name": "c1", "type": "conv", "out": 2, "kernel": 3, "padding": 1},
               {"type": "pool", "kernel": 2},
               {"type": "flatten"}, {"name": "f1", "type": "fc", "out": 3}],
}


def with_change(path, value):
    data = copy.deepcopy(BASE)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("name", bundled_nets())
def test_bundled_nets_load(name):
    net = load_net(MODELS_DIR / f"{name}.yaml")
    assert net.name == name
    assert net.layers[-1].weighted


def test_shapes_are_inferred():
    net = parse_net(BASE, "x.yaml")
    assert [layer.out_shape for layer in net.layers] == [(2, 4, 4), (2, 2, 2), (8, 1, 1), (3, 1, 1)]
    assert net.classes == 3


def test_vgg11_matches_the_paper_code():
    net = load_net(resolve_net("vgg11"))
    convs = [layer for layer in net.layers if layer.type == "conv"]
    assert [c.out_shape for c in convs][-1] == (512, 2, 2)
    n_weights = sum(layer.fan_in * layer.out_shape[0] for layer in net.weighted_layers)
    assert abs(n_weights - 10.5e6) < 0.1e6      # 10.5 M weights (DESIGN.md)
    macs = sum(layer.fan_in * layer.n_out for layer in net.weighted_layers)
    assert abs(macs - 295e6) < 2e6             # 295 M MACs per tick


@pytest.mark.parametrize("path, value, message", [
    (("layers", 0, "stride"), "two", "x.yaml: layers[0].stride: expected an integer >= 1, got 'two'"),
    (("layers", 0, "type"), "dense", "x.yaml: layers[0].type: expected one of 'conv', 'fc', 'pool', 'flatten', got 'dense'"),
    (("layers", 1, "kernel"), 3, "x.yaml: layers[1].kernel: expected a size dividing the 4x4 input"),
    (("time_steps",), 0, "x.yaml: time_steps: expected an integer in [1, 65535], got 0"),
    (("input_shape",), [1, 4], "x.yaml: input_shape: expected a list [channels, height, width]"),
    (("neuron",), {"model": "LIF", "alpha": 1.5}, "x.yaml: neuron.alpha: expected a number in [0.0, 1.0], got 1.5"),
    (("neuron",), {"model": "IF", "alpha": 0.9}, "x.yaml: neuron.alpha: expected 1.0 (or omitted) for IF"),
    (("chip",), {"weight_bits": 40}, "x.yaml: chip.weight_bits: expected an integer in [2, 16], got 40"),
    (("chip",), {"costs": {"energy_mac_pj": -1}}, "x.yaml: chip.costs.energy_mac_pj: expected a number >= 0.0, got -1"),
    (("chip",), {"tile_rowz": 4}, "x.yaml: chip.tile_rowz: unknown key"),
    (("encoder",), {"kind": "poisson"}, "x.yaml: encoder.kind: expected one of 'rate', 'if', 'direct', 'events', got 'poisson'"),
    (("learning",), {"layers": ["c9"]}, "x.yaml: learning.layers[0]: expected a weighted layer name (c1, f1), got 'c9'"),
    (("readout",), "vote", "x.yaml: readout: expected one of 'count', 'potential', got 'vote'"),
    (("learning",), {"layer_pulse": [0.1]}, "x.yaml: learning.layer_pulse: expected a mapping of layer name to pulse"),
    (("learning",), {"layer_pulse": {"c9": 0.1}},
     "x.yaml: learning.layer_pulse.c9: expected a learning layer (c1, f1), got 'c9'"),
    (("learning",), {"layers": ["f1"], "layer_pulse": {"c1": 0.1}},
     "x.yaml: learning.layer_pulse.c1: expected a learning layer (f1), got 'c1'"),
    (("learning",), {"layer_pulse": {"c1": 0}},
     "x.yaml: learning.layer_pulse.c1: expected a number >= 1e-06 (LSBs per pulse), got 0"),
    (("learning",), {"layer_pulse": {"c1": "big"}},
     "x.yaml: learning.layer_pulse.c1: expected a number >= 1e-06 (LSBs per pulse), got 'big'"),
    (("learning",), {"pulse_scale": "area"},
     "x.yaml: learning.pulse_scale: expected one of 'none', 'positions', got 'area'"),
    (("learning",), {"dead_zone_spikes": -1}, "x.yaml: learning.dead_zone_spikes: expected a number >= 0.0, got -1"),
    (("learning",), {"multibit_input": "value"},
     "x.yaml: learning.multibit_input: expected one of 'count', 'scale', got 'value'"),
    (("learning",), {"threshold_pulse": 2}, "x.yaml: learning.threshold_pulse: expected a number in [0.0, 1.0], got 2"),
    (("learning",), {"threshold_range": 0}, "x.yaml: learning.threshold_range: expected a number in [1e-06, 1.0], got 0"),
    (("learning",), {"pulse_decay": 1.5}, "x.yaml: learning.pulse_decay: expected a number in [1e-06, 1.0], got 1.5"),
    (("learning",), {"pulse_decay_every": -1}, "x.yaml: learning.pulse_decay_every: expected an integer >= 0, got -1"),
    (("learning",), {"pulse_decay": 0.5},
     "x.yaml: learning.pulse_decay_every: expected a number of samples >= 1 between decay steps (pulse_decay is 0.5"),
    (("learning",), {"pulse_decay_restart": "batch"},
     "x.yaml: learning.pulse_decay_restart: expected one of 'never', 'epoch', got 'batch'"),
])
def test_errors_name_the_key_path(path, value, message):
    with pytest.raises(ConfigError) as err:
        parse_net(with_change(path, value), "x.yaml")
    assert message in str(err.value)


def test_missing_and_misplaced_layers():
    data = copy.deepcopy(BASE)
    del data["layers"][2]       # fc right after a pooled 2x2 map
    with pytest.raises(ConfigError, match=r"layers\[2\]\.type: expected a flatten layer before the first fc layer"):
        parse_net(data, "x.yaml")
    data = copy.deepcopy(BASE)
    del data["time_steps"]
    with pytest.raises(ConfigError, match="x.yaml: time_steps: missing"):
        parse_net(data, "x.yaml")


def test_load_net_reports_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_net(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_net(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    assert load_net(good).source == str(good)


def test_resolve_net_accepts_names_and_paths(tmp_path):
    assert resolve_net("vgg11") == resolve_net("vgg11.yaml") == MODELS_DIR / "vgg11.yaml"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(BASE))
    assert resolve_net(path) == path
    with pytest.raises(FileNotFoundError, match="digits"):
        resolve_net("alexnet")


def test_learning_per_layer_settings_parse():
    data = with_change(("learning",), {"layers": ["c1", "f1"], "pulse": 0.5, "layer_pulse": {"c1": 0.01},
                                       "pulse_scale": "positions", "dead_zone_spikes": 1,
                                       "multibit_input": "scale"})
    cfg = parse_net(data, "x.yaml").learning
    assert cfg.layer_pulse == {"c1": 0.01} and cfg.pulse_scale == "positions"
    assert cfg.dead_zone_spikes == 1.0 and cfg.multibit_input == "scale"
    assert cfg.layer_pulse_of("c1", 16) == 0.01 / 16 and cfg.layer_pulse_of("f1") == 0.5
    defaults = parse_net(with_change(("learning",), {"pulse": 0.5}), "x.yaml").learning
    assert defaults.layer_pulse == {} and defaults.pulse_scale == "none"
    assert defaults.dead_zone_spikes == 0.0 and defaults.multibit_input == "count"
    assert defaults.layer_pulse_of("c1", 16) == 0.5
