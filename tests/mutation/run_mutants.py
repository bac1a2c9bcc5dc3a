"""Mutation testing of the fast numeric modules: break the code, check that a test fails.

Each mutant is one small change to one module's syntax tree: a comparison flipped
(`<` to `<=` and to `>=`, `==` to `!=`, `in` to `not in`), an arithmetic or boolean
operator swapped (`+`/`-`, `*`/`/`, `//` to `/`, `%` to `*`, `**` to `*`, `and`/`or`),
a unary minus or `not` dropped, an integer constant moved by one either way, a float
constant moved by one, `True`/`False` swapped, the first two positional arguments of
a call swapped (not of `max`, `min`, `maximum`, `minimum`: symmetric), or a statement
inside a function dropped (replaced by `pass`). Strings, docstrings, annotations,
decorators and f-strings are left alone.

The tree is never changed: a mutant is written to a temporary folder, and the runner,
which imports TensorFlow, Keras and pytest once, forks a child per mutant that installs
an import hook serving it under the module's own name, then runs the module's test
files with pytest (`-x`, output discarded). A failing or erroring run kills the mutant, so
does a run past the timeout (a few times the unmutated run); a passing run is a
survivor. The unmutated run comes first and must pass; it also records which tests
call each top-level function or class of the module, and a mutant inside one runs
those tests first, fastest first; a mutant they do not kill (or one outside any
function, or in one no test was seen calling) runs the whole files, which decide.

    python tests/mutation/run_mutants.py                 # every module below
    python tests/mutation/run_mutants.py augment folding # some of them
    python tests/mutation/run_mutants.py --list schedules  # the mutants, not run
    python tests/mutation/run_mutants.py schedules --mutants 3,17  # some mutants again

Prints each survivor (line, change) and a Markdown table: module, mutants, killed,
score. `--json PATH` also writes every mutant's outcome. Tests that start
subprocesses would import the unmutated file: the test files listed here start none.
This file is not a test module (pytest collects `test_*.py` only, and
`tests/mutation/conftest.py` ignores this folder).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Target:
    """A module to mutate and the test files that guard it."""

    source: str  # path from the repository root
    module: str  # the name it is imported as
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()  # mutate only these top-level defs (all when empty)


TARGETS = {
    "frame_indices": Target(
        "keras_squeezetime/video/frame_indices.py", "keras_squeezetime.video.frame_indices",
        ("tests/keras_squeezetime/video/test_frame_indices.py",)),
    "graph_sampling": Target(
        "training/graph_frame_indices.py", "keras_squeezetime.training.graph_frame_indices",
        ("tests/training/test_graph_frame_indices.py",)),
    "augment": Target(
        "training/augment.py", "keras_squeezetime.training.augment",
        ("tests/training/test_augment.py",)),
    "schedules": Target(
        "training/schedules.py", "keras_squeezetime.training.schedules",
        ("tests/training/test_schedules.py",)),
    "optimizer": Target(
        "training/optimizer.py", "keras_squeezetime.training.optimizer",
        ("tests/training/test_schedules.py", "tests/training/test_optimizer.py")),
    "quality_metrics": Target(
        "tflite/report.py", "keras_squeezetime.tflite.report",
        ("tests/tflite/test_report.py",), functions=("quality_metrics",)),
    "folding": Target(
        "keras_squeezetime/folding.py", "keras_squeezetime.folding",
        ("tests/keras_squeezetime/test_folding.py",)),
    "tensor_quantization": Target(
        "tflite/tensor_quantization.py", "keras_squeezetime.tflite.tensor_quantization",
        ("tests/tflite/test_tensor_quantization.py",)),
}

_COMPARE_SWAPS = {
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,), ast.NotIn: (ast.In,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
}
_BINOP_SWAPS = {
    ast.Add: (ast.Sub,), ast.Sub: (ast.Add,), ast.Mult: (ast.Div,), ast.Div: (ast.Mult,),
    ast.FloorDiv: (ast.Div,), ast.Mod: (ast.Mult,), ast.Pow: (ast.Mult,),
}
_BOOLOP_SWAPS = {ast.And: ast.Or, ast.Or: ast.And}
_DROPPABLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return, ast.Raise,
              ast.If, ast.Continue)
_SKIPPED_FIELDS = {"annotation", "returns", "decorator_list", "type_comment"}
_SYMMETRIC_CALLS = {"max", "min", "maximum", "minimum"}
_OP_SYMBOLS = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+",
    ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.And: "and", ast.Or: "or",
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    index: int
    line: int
    owner: str | None  # the top-level function or class it is in (None: module level)
    description: str


def _sites(tree: ast.Module, functions: tuple[str, ...]) -> list[tuple]:
    """Every mutation of `tree`, in a fixed order: `(line, owner, description, apply)`.

    `apply()` changes `tree` in place; the order is the same for every parse of one source.
    """
    sites = []
    owner = None

    def add(node, description, apply):
        sites.append((node.lineno, owner, description, apply))

    def visit(node, parent, field, index, in_function):
        if isinstance(node, ast.JoinedStr):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(
                node.value.value, str):
            return  # docstring
        if in_function and isinstance(node, _DROPPABLE) and index is not None:
            def drop(parent=parent, field=field, index=index, node=node):
                getattr(parent, field)[index] = ast.copy_location(ast.Pass(), node)
            add(node, f"drop `{_short(node)}`", drop)
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new in _COMPARE_SWAPS.get(type(op), ()):
                    def swap(node=node, i=i, new=new):
                        node.ops[i] = new()
                    add(node, f"`{_OP_SYMBOLS[type(op)]}` -> `{_OP_SYMBOLS[new]}` in "
                              f"`{_short(node)}`", swap)
        elif isinstance(node, (ast.BinOp, ast.AugAssign)):
            for new in _BINOP_SWAPS.get(type(node.op), ()):
                def swap(node=node, new=new):
                    node.op = new()
                add(node, f"`{_OP_SYMBOLS[type(node.op)]}` -> `{_OP_SYMBOLS[new]}` in "
                          f"`{_short(node)}`", swap)
        elif isinstance(node, ast.BoolOp):
            new = _BOOLOP_SWAPS[type(node.op)]

            def swap(node=node, new=new):
                node.op = new()
            add(node, f"`{_OP_SYMBOLS[type(node.op)]}` -> `{_OP_SYMBOLS[new]}` in "
                      f"`{_short(node)}`", swap)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            def unwrap(parent=parent, field=field, index=index, node=node):
                _replace(parent, field, index, node.operand)
            add(node, f"drop `{'-' if isinstance(node.op, ast.USub) else 'not'}` in "
                      f"`{_short(node)}`", unwrap)
        elif isinstance(node, ast.Constant) and not isinstance(node.value, (str, bytes)):
            value = node.value
            if isinstance(value, bool):
                changes = [not value]
            elif isinstance(value, int):
                changes = [value + 1, value - 1]
            elif isinstance(value, float):
                changes = [value + 1.0]
            else:
                changes = []
            for new in changes:
                def change(node=node, new=new):
                    node.value = new
                add(node, f"`{value!r}` -> `{new!r}`", change)
        elif isinstance(node, ast.Call):
            positional = [a for a in node.args if not isinstance(a, ast.Starred)]
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", None)
            if len(positional) == len(node.args) >= 2 and callee not in _SYMMETRIC_CALLS:
                def swap(node=node):
                    node.args[0], node.args[1] = node.args[1], node.args[0]
                add(node, f"swap the first two arguments of `{_short(node)}`", swap)

        for child_field, value in ast.iter_fields(node):
            if child_field in _SKIPPED_FIELDS:
                continue
            inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, ast.AST):
                        visit(child, node, child_field, i, inside)
            elif isinstance(value, ast.AST):
                visit(value, node, child_field, None, inside)

    for i, statement in enumerate(tree.body):
        if functions and getattr(statement, "name", None) not in functions:
            continue
        owner = getattr(statement, "name", None)
        visit(statement, tree, "body", i, False)
    return sites


def _replace(parent, field, index, new):
    if index is None:
        setattr(parent, field, new)
    else:
        getattr(parent, field)[index] = new


def _short(node: ast.AST, limit: int = 70) -> str:
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mutants(target: Target) -> list[Mutant]:
    source = (ROOT / target.source).read_text()
    return [Mutant(i, line, owner, description) for i, (line, owner, description, _)
            in enumerate(_sites(ast.parse(source), target.functions))]


def mutated_code(target: Target, index: int | None, scratch: Path):
    """The module's code object with mutation `index` applied (None: unmutated).

    A mutant's source is written to `scratch` (outside the tree) and compiled under that
    path: TensorFlow's autograph converts functions (a `tf.function`, `tf.map_fn`'s
    callable) from the source file their code names, so a mutant compiled under the
    module's own path would run as the unmutated code there.
    """
    path = ROOT / target.source
    source = path.read_text()
    if index is None:
        return compile(source, str(path), "exec")
    tree = ast.parse(source)
    _sites(tree, target.functions)[index][3]()
    mutant_path = scratch / f"mutant_{index}_{path.name}"
    mutant_path.write_text(ast.unparse(ast.fix_missing_locations(tree)) + "\n")
    return compile(mutant_path.read_text(), str(mutant_path), "exec")


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves `code` as module `name`."""

    def __init__(self, name: str, path: Path, code):
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, origin=str(self.path))
        spec.has_location = True
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__file__ = self.code.co_filename
        exec(self.code, module.__dict__)


class _CallRecorder:
    """pytest plugin: which tests call each top-level function or class of one file."""

    def __init__(self, path: Path):
        self.path, self.current, self.calls, self.seconds = str(path), None, {}, {}

    def _profile(self, frame, event, arg):
        if event == "call" and self.current and frame.f_code.co_filename == self.path:
            owner = frame.f_code.co_qualname.split(".")[0]
            self.calls.setdefault(owner, set()).add(self.current)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.current, start = item.nodeid, time.monotonic()
        sys.setprofile(self._profile)
        threading.setprofile(self._profile)
        try:
            yield
        finally:
            sys.setprofile(None)
            threading.setprofile(None)
            self.seconds[item.nodeid] = time.monotonic() - start
            self.current = None

    def tests_by_owner(self) -> dict:
        """`{owner: [test ids, fastest first]}`, and every test under `None`."""
        def fastest_first(ids):
            return sorted(ids, key=lambda nodeid: self.seconds.get(nodeid, 0.0))

        tests = {owner: fastest_first(ids) for owner, ids in self.calls.items()}
        return {**tests, None: fastest_first(self.seconds)}


# pytest exit codes: 1 tests failed, 2 interrupted (e.g. a test module failed to import),
# 3 internal error: the mutant broke something. 4 (usage) and 5 (no tests) are the runner's.
_KILLING_CODES = {1, 2, 3}


def _run_tests(target: Target, index: int | None, tests: list[str], timeout: float,
               scratch: Path, record: Path | None = None) -> tuple[str, float]:
    """Runs `tests` on mutant `index` (None: unmutated) in a forked child: (outcome, seconds).

    With `record`, the child writes there which tests call each top-level definition,
    fastest first (with `-x`, a mutant that a fast test kills costs only that test).
    """
    code = mutated_code(target, index, scratch)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        status = 3
        try:
            os.setpgid(0, 0)
            sink = os.open(os.devnull, os.O_WRONLY)
            os.dup2(sink, 1)
            os.dup2(sink, 2)
            sys.meta_path.insert(0, _MutantFinder(target.module, ROOT / target.source, code))
            recorder = _CallRecorder(ROOT / target.source) if record else None
            status = int(pytest.main([*tests, "-x", "-q", "-p", "no:cacheprovider",
                                      "-p", "no:xdist"], plugins=[recorder] if recorder else []))
            if recorder:
                record.write_text(json.dumps(list(recorder.tests_by_owner().items())))
        finally:
            os._exit(status)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.monotonic() - start
        if done:
            code = os.waitstatus_to_exitcode(status)
            if code == 0:
                return "survived", elapsed
            return ("killed" if code in _KILLING_CODES or code < 0 else f"error {code}"), elapsed
        if elapsed > timeout:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return "timeout", elapsed
        time.sleep(0.05)


def run(name: str, target: Target, only: set[int] | None = None) -> dict:
    files = [t for t in target.tests if (ROOT / t).exists()]
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        return _run_all(name, target, files, only, Path(scratch))


def _run_all(name: str, target: Target, files: list[str], only: set[int] | None,
             scratch: Path) -> dict:
    record = scratch / "calls.json"
    outcome, baseline = _run_tests(target, None, files, 900, scratch, record=record)
    if outcome != "survived":
        raise SystemExit(f"{name}: the tests fail without any mutation ({outcome}).")
    calls = dict(json.loads(record.read_text()))
    timeout = 3 * baseline + 10
    todo = [m for m in mutants(target) if only is None or m.index in only]
    print(f"{name}: {len(todo)} mutants of {target.source}, unmutated tests {baseline:.1f} s",
          flush=True)
    results, started = [], time.monotonic()
    for done, mutant in enumerate(todo, 1):
        tests = calls.get(mutant.owner, [])
        outcome, seconds = "not run", 0.0
        if tests:
            outcome, seconds = _run_tests(target, mutant.index, tests, timeout, scratch)
        if outcome == "not run" or outcome.startswith("error") or (
                outcome == "survived" and len(tests) < len(calls[None])):
            # No recorded caller (code that autograph converted is not seen calling), a
            # collection the mutant broke (a parametrisation built from the module), or
            # a survivor of the selection: the whole files decide.
            outcome, more = _run_tests(target, mutant.index, files, timeout, scratch)
            seconds += more
        results.append({**dataclasses.asdict(mutant), "outcome": outcome,
                        "tests": len(tests), "seconds": round(seconds, 2)})
        if outcome not in ("killed", "timeout"):
            print(f"  {outcome} #{mutant.index} line {mutant.line}: {mutant.description}",
                  flush=True)
        if done % 25 == 0 and done < len(todo):
            rate = done / (time.monotonic() - started)
            killed = sum(r["outcome"] in ("killed", "timeout") for r in results)
            print(f"  {done}/{len(todo)} run, {killed} killed, {rate * 60:.1f} mutants/min, "
                  f"ETA {(len(todo) - done) / rate / 60:.0f} min", flush=True)
    killed = sum(r["outcome"] in ("killed", "timeout") for r in results)
    return {"module": name, "source": target.source, "mutants": len(results), "killed": killed,
            "results": results}


def _preload() -> None:
    """Imports the heavy libraries once, before any fork (none of the project's modules)."""
    import numpy  # noqa: F401
    import tensorflow  # noqa: F401
    import keras  # noqa: F401

    project = [m for m in sys.modules if m.split(".")[0] in ("keras_squeezetime", "tests")]
    assert not project, f"preloading imported project modules: {project}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument("--json", help="write every mutant's outcome to this file")
    parser.add_argument("--mutants", help="comma-separated mutant numbers: run only these")
    args = parser.parse_args(argv)
    names = args.modules or list(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        parser.error(f"unknown modules {unknown}; choose from {', '.join(TARGETS)}")
    if args.list:
        for name in names:
            for mutant in mutants(TARGETS[name]):
                print(f"{name} #{mutant.index} line {mutant.line}: {mutant.description}")
        return 0
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    _preload()
    only = {int(i) for i in args.mutants.split(",")} if args.mutants else None
    reports = []
    for name in names:
        started = time.monotonic()
        reports.append(run(name, TARGETS[name], only))
        print(f"{name}: done in {time.monotonic() - started:.0f} s", flush=True)
    print("\n| module | source | mutants | killed | score |\n|---|---|---|---|---|")
    for r in reports:
        print(f"| {r['module']} | {r['source']} | {r['mutants']} | {r['killed']} | "
              f"{100 * r['killed'] / max(r['mutants'], 1):.1f}% |")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
