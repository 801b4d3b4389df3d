"""Named learning presets: `learning_presets: {NAME: {KEY: VALUE}}` in a net YAML, chosen with
`--learn preset=NAME` (the preset first, the other --learn overrides on top)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chipsim.config import ConfigError, parse_net
from chipsim.workflows.calibrate import learning_config
from chipsim.workflows.runner import RunError

DIGITS = Path(__file__).resolve().parents[1] / "models" / "digits.yaml"


def net_with(presets):
    data = yaml.safe_load(DIGITS.read_text())
    data["learning_presets"] = presets
    return parse_net(data, "net.yaml", DIGITS.parent)


def test_a_preset_is_the_learning_section_with_its_keys_replaced():
    net = net_with({"coarse": {"pulse": 3.0, "threshold_pulse": 0.01}})
    preset = net.learning_preset("coarse")
    assert preset.pulse == 3.0 and preset.threshold_pulse == 0.01
    # every other key is the section's own
    assert preset.layers == net.learning.layers and preset.warmup == net.learning.warmup
    assert net.learning.pulse != 3.0


def test_learn_preset_then_the_other_overrides():
    net = net_with({"coarse": {"pulse": 3.0, "warmup": 5}})
    cfg = learning_config(net, ("warmup=7", "preset=coarse"))
    assert (cfg.pulse, cfg.warmup) == (3.0, 7)
    assert learning_config(net, ()).pulse == net.learning.pulse


def test_unknown_preset_names_the_flag_and_the_known_ones():
    net = net_with({"coarse": {"pulse": 3.0}})
    with pytest.raises(RunError, match=r"--learn preset=fine: .*no such learning preset.*\(coarse\)"):
        learning_config(net, ("preset=fine",))
    with pytest.raises(RunError, match="given 2 times"):
        learning_config(net, ("preset=coarse", "preset=coarse"))


@pytest.mark.parametrize("presets,where", [
    ({"coarse": {"pulse": -1}}, "learning_presets.coarse.pulse"),
    ({"coarse": {"bogus": 1}}, "learning_presets.coarse"),
    ({"coarse": [1]}, "learning_presets.coarse"),
    ({"not a name": {}}, "learning_presets"),
    ([1, 2], "learning_presets"),
])
def test_bad_presets_name_the_key(presets, where):
    with pytest.raises(ConfigError, match=rf"net.yaml: {where}"):
        net_with(presets)


def test_the_shipped_vgg11_presets_parse():
    from chipsim.workflows.runner import resolve_net_option

    net = resolve_net_option("vgg11")
    q = net.learning_preset("quantized")      # Figure 4's bits panel calibrates with it
    assert q is not None and q.pulse == pytest.approx(net.learning.pulse / 10)
    assert q.layer_pulse == pytest.approx({k: v / 10 for k, v in net.learning.layer_pulse.items()})
    assert (q.layers, q.threshold_pulse, q.mode) == (net.learning.layers, net.learning.threshold_pulse, "sign")
