import io

from chipsim.cli.progress import ProgressBar


def test_off_a_terminal_a_line_is_printed_at_every_tenth():
    out = io.StringIO()                       # not a tty: no redrawn bar, lines instead
    bar = ProgressBar(40, "teacher epoch 1/10", stream=out)
    for _ in range(40):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == [str(10 * k) for k in range(1, 11)]
    assert lines[3].startswith("teacher epoch 1/10: 40 % (16/40, ")


def test_large_steps_print_each_tenth_once_and_never_past_100():
    out = io.StringIO()
    bar = ProgressBar(7, "chip", stream=out)
    bar.update(3)                             # 3/7: 42 % -> the 40 % line
    bar.update(10)                            # past the end (a last partial batch counted in full)
    lines = out.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["chip: 40 %", "chip: 100 %"]


def test_lazy_bar_starts_at_the_first_update_and_closes_safely(capsys):
    from chipsim.cli.progress import LazyProgressBar

    unused = LazyProgressBar("never")
    unused.close()                            # nothing started: nothing to close, nothing printed
    bar = LazyProgressBar("sweep")
    for _ in range(4):
        bar(1, 4)                             # the total is known only at the first call
    bar.close()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err] == ["sweep: 20 %", "sweep: 50 %", "sweep: 70 %", "sweep: 100 %"]
