"""Starting a command-line tool from its console script, with its own `--help`.

absl's `--help` shows the main module's docstring and flags. Started from a console
script, the main module is the generated launcher, which has neither: the help was one
empty usage line. `run_tool` lends the tool module's docstring and flags to the launcher.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Callable

from absl import app, flags

_HELP_FLAGS = {"-h", "-?", "--help", "--helpshort", "--helpfull", "--helpxml"}


def run_tool(main: Callable[[list[str]], int | None], module_name: str, program: str,
             quiet_tensorflow: bool = True) -> None:
    """Runs `main` through `app.run` with `module_name`'s docstring and flags as its help.

    `--help` exits 0; a flag that does not parse exits 2 with one line naming it.

    Args:
      main: the tool's `main(argv)`.
      module_name: the module defining the tool's flags (its `__name__`).
      program: the tool's name (its console script), which starts its warning lines.
      quiet_tensorflow: hide TensorFlow's C++ start-up logs, which would bury the output
        (an explicit `TF_CPP_MIN_LOG_LEVEL` wins).
    """
    if quiet_tensorflow:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _plain_user_warnings(program)
    launcher = sys.modules.get("__main__")
    tool = sys.modules[module_name]
    # Only when help is asked for: absl prints the same help above every usage error,
    # where the one-line message should stand alone.
    asked = any(arg.split("=")[0] in _HELP_FLAGS for arg in sys.argv[1:])
    if asked and launcher is not None and launcher is not tool:
        launcher.__doc__ = tool.__doc__
        # The tool's flags and those of the package's modules it shares them from.
        for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
            if module.startswith("keras_squeezetime"):
                for flag in module_flags:
                    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    try:
        app.run(main, flags_parser=lambda argv: _parse_flags(argv, program))
    except SystemExit as exit_:
        if asked and exit_.code == 1:  # absl ends a help request with status 1
            sys.exit(0)
        raise


def _parse_flags(argv: list[str], program: str) -> list[str]:
    """absl's flag parsing, with a bad flag said in one line and exit status 2 (absl: 1,
    the status the tools give failed work)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"{program}: error: {error}\nPass --help to see the flags.", file=sys.stderr)
        sys.exit(2)


def _plain_user_warnings(program: str) -> None:
    """Shows the package's warnings to a tool's user as `<program>: warning: <message>`
    lines: Python's format adds the warning's source file and line, which say nothing to
    them. Other warnings keep Python's format."""
    python_format = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None):
        if issubclass(category, UserWarning) and not issubclass(category, DeprecationWarning):
            return f"{program}: warning: {message}\n"
        return python_format(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
