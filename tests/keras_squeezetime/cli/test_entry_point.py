"""Every console script's `--help` shows its own docstring and flags (absl shows the main
module's, which for a console script is the generated launcher: one empty usage line)."""

from __future__ import annotations

import ast
import configparser
import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _console_scripts() -> dict[str, str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


SCRIPTS = _console_scripts()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_console_script_help_shows_the_tools_doc_and_flags(name):
    script = pathlib.Path(sys.executable).parent / name
    if not script.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable} (pip install -e .)")
    # Read, not imported: the tools' absl flags would clash in this process.
    source = pathlib.Path(importlib.util.find_spec(SCRIPTS[name].split(":")[0]).origin)
    text = source.read_text(encoding="utf-8")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    first_line = ast.get_docstring(ast.parse(text)).strip().splitlines()[0]
    assert first_line in result.stdout, result.stdout[:1000] + result.stderr[-1000:]
    assert result.returncode == 0  # asked-for help is not a failure (absl exits 1)
    own_flags = _defined_flags(text)
    assert own_flags, f"{source} defines no flag"
    for flag in own_flags:
        assert f"--{flag}:" in result.stdout or f"--[no]{flag}:" in result.stdout, (
            flag, result.stdout[:2000])


def _defined_flags(source: str) -> list[str]:
    """Names of the flags a module defines (`flags.DEFINE_*("name", ...)`, over any lines)."""
    return [node.args[0].value for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr.startswith("DEFINE_") and node.args
            and isinstance(node.args[0], ast.Constant)]


@pytest.mark.parametrize("args, fragment", [
    (["--shard_size=8"], "Unknown command line flag 'shard_size'"),
    (["--workers=abc"], "--workers"),
])
def test_a_bad_flag_is_one_line_and_exit_status_2(args, fragment):
    command = [sys.executable, "-m", "keras_squeezetime.training.cli.prepare", "--output=x", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("squeezetime-")]
    assert len(lines) == 1 and lines[0].startswith("squeezetime-prepare: error: "), result.stderr
    assert fragment in lines[0] and "Traceback" not in result.stderr
