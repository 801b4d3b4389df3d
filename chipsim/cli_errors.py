"""How the command line reports the errors a user can cause, and Ctrl-C."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click


@contextmanager
def user_facing(errors: tuple[type[BaseException], ...], interrupted: str, bar=None):
    """Run a command's work: an expected error becomes click's one-line `Error: ...` (no traceback), Ctrl-C
    prints `interrupted` (what was kept and how to go on) and exits 130; `bar` (if any) is closed either way."""
    from .atomic import WriteError

    try:
        yield
    except (*errors, WriteError) as exc:       # a failed write names its file, whatever the command
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(130)
    finally:
        if bar is not None:
            bar.close()
