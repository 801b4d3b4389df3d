"""How the command line reports the errors a user can cause, and Ctrl-C."""
from __future__ import annotations

import sys
from contextlib import contextmanager

import click


@contextmanager
def user_facing(errors: tuple[type[BaseException], ...], interrupted: str, bar=None):
    """Run a command's work: an expected error becomes click's one-line `Error: ...` (no traceback), Ctrl-C
    prints `interrupted` (what was kept and how to go on) and exits 130; `bar` (if any) is closed either way."""
    from chipsim.io.atomic import WriteError

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


#: a seed: every random draw derives from SeedSequence(seed, ...), kept in 64-bit registers and files
SEED = click.IntRange(0, 2**64 - 1)


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses nan and +-inf (a NaN compares False with every bound, so FloatRange
    lets it through)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        import math

        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number; expected {self._describe_range()}"
                      if self.min is not None or self.max is not None else
                      f"{value!r} is not a finite number", param, ctx)
        return super().convert(rv, param, ctx)


class NonEmptyText(click.ParamType):
    """Text that is not blank: an empty value is refused, not read as "the default" (leaving the flag
    out means the default)."""

    name = "text"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail(f"{value!r} is empty; expected a value, or leave the flag out for the default", param, ctx)
        return value


NONEMPTY = NonEmptyText()


class CheckedGroup(click.Group):
    """The command group: an argument holding a NUL byte (which no path, name or number can hold) is refused
    with the option it was given to, before any command sees it."""

    def parse_args(self, ctx, args):
        for i, arg in enumerate(args):
            if isinstance(arg, str) and "\x00" in arg:
                flag = args[i - 1] if i > 0 and args[i - 1].startswith("-") else None
                where = f"{flag} {arg!r}" if flag else f"argument {arg!r}"
                raise click.UsageError(f"{where}: contains a NUL byte; expected text without NUL bytes", ctx)
        return super().parse_args(ctx, args)
