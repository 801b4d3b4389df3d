"""Inputs the long CLI fuzz profile (tests/test_cli_fuzz.py, CHIPSIM_FUZZ=5000) found accepted or refused
wrongly, each pinned by an exact case: refused with one Error line naming the flag, file or key, or (the
re-calibration of a calibrated chip) accepted."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from chipsim.cli.main import main


def invoke(*argv):
    result = CliRunner().invoke(main, list(map(str, argv)))
    assert "Traceback" not in result.output
    return result


def error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert result.exit_code != 0 and len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def digits_nir(tmp_path_factory):
    pytest.importorskip("nir", reason="NIR support needs the nir package (pip install -e .)")
    path = tmp_path_factory.mktemp("nir") / "digits.nir"
    assert invoke("export-nir", "--out", path).exit_code == 0
    return path


@pytest.mark.parametrize("name", [".", "..", "a/b", "-x", "x" * 101])
def test_import_nir_name_must_be_a_plain_file_stem(tmp_path, digits_nir, name):
    line = error_line(invoke("import-nir", digits_nir, "--out", tmp_path / "out", "--name", name))
    assert "--name" in line and "cannot name the written files" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_import_nir_refuses_nan_parameters(tmp_path, digits_nir):
    bad = tmp_path / "nan.nir"
    shutil.copy(digits_nir, bad)
    with h5py.File(bad, "r+") as f:
        w = f["node/nodes/fc1/weight"]
        data = w[()]
        data.flat[7] = np.nan
        w[...] = data
    line = error_line(invoke("import-nir", bad, "--out", tmp_path / "out"))
    assert "'fc1'" in line and "weight" in line and "NaN" in line


def test_weights_file_with_a_corrupt_declared_width_is_refused(tmp_path):
    from chipsim.workflows.runner import resolve_net_option

    src = resolve_net_option("digits").weights
    for bits, word in ((-1, "[2, 16]"), (3, "exceed")):
        bad = tmp_path / f"w{bits}.h5"
        shutil.copy(src, bad)
        with h5py.File(bad, "r+") as f:
            f.attrs["weight_bits"] = bits
        line = error_line(invoke("run", "--samples", 4, "--no-progress", "--out", tmp_path / f"o{bits}",
                                 "--weights", bad))
        assert str(bad) in line and "weight_bits" in line and word in line


def test_pretrain_refuses_an_empty_data_flag(tmp_path):
    line = error_line(invoke("pretrain", "--net", "digits", "--epochs", 1, "--out", tmp_path / "p.h5", "--data", ""))
    assert "--data" in line and "empty" in line


def test_calibrating_a_calibrated_chip_uses_the_teacher_of_its_weights(tmp_path):
    """A chip state holds no teacher ANN; it records the weights it came from, whose teacher is used."""
    from chipsim.workflows.runner import resolve_net_option

    digits_weights = resolve_net_option("digits").weights
    args = ("--samples", 8, "--calibrate-epochs", 1, "--calib-samples", 16, "--no-progress")
    assert invoke("run", *args, "--out", tmp_path / "a").exit_code == 0
    again = invoke("run", *args, "--out", tmp_path / "b", "--weights", tmp_path / "a" / "calibrated.h5")
    assert again.exit_code == 0, again.output
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["teacher"] == str(digits_weights)
    # a weights file without a teacher is still refused, naming it
    bare = tmp_path / "bare.h5"
    shutil.copy(digits_weights, bare)
    with h5py.File(bare, "r+") as f:
        del f["teacher"]
    line = error_line(invoke("run", *args, "--out", tmp_path / "c", "--weights", bare))
    assert str(bare) in line and "teacher" in line
