"""The command line's error reporting: expected errors become one line, Ctrl-C exits 130 with a hint."""
import click
import pytest

from chipsim.cli.errors import user_facing


class Bar:
    closed = 0

    def close(self):
        self.closed += 1


def test_an_expected_error_becomes_a_click_message_and_the_bar_closes():
    bar = Bar()
    with pytest.raises(click.ClickException) as info:
        with user_facing((ValueError,), "unused", bar):
            raise ValueError("net.yaml: layers[0].out: expected a positive integer, got -1")
    assert info.value.message == "net.yaml: layers[0].out: expected a positive integer, got -1"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert bar.closed == 1


def test_ctrl_c_prints_the_hint_and_exits_130(capsys):
    bar = Bar()
    with pytest.raises(SystemExit) as info:
        with user_facing((ValueError,), "interrupted: resume with --resume runs/x", bar):
            raise KeyboardInterrupt
    assert info.value.code == 130
    assert capsys.readouterr().err == "interrupted: resume with --resume runs/x\n"
    assert bar.closed == 1


def test_other_errors_pass_through_and_success_returns_normally():
    bar = Bar()
    with pytest.raises(KeyError):
        with user_facing((ValueError,), "unused", bar):
            raise KeyError("a bug, not a user error: keep its traceback")
    with user_facing((ValueError,), "unused", bar):
        done = True
    assert done and bar.closed == 2
