"""The package's floors hold: every import of every module, lazy ones included, goes down.

Floors (README, "Architecture"):
  core      keras_squeezetime/ minus apps/ and cli/: model, layers, weights, loading,
            settings, video, datasets, worker pool;
  training  training/ (installed as keras_squeezetime.training);
  tflite    tflite/ (installed as keras_squeezetime.tflite);
  apps      keras_squeezetime/apps/ (and the alias modules at their old paths);
  cli       keras_squeezetime/cli/, training/cli/, tflite/cli/.

The core imports none of the others; training imports neither tflite, apps nor cli;
tflite imports neither apps nor cli; apps import no cli. No circle between core modules.
The layers and the builder import no TensorFlow (keras.ops only), no core module imports
TensorFlow when it is imported (backends other than TF must not pay for it), and no core
module reaches into Keras' or TensorFlow's private modules.

Imports are read from the source with `ast`, at module level and inside functions. The
package root re-exports names lazily from the modules in its `_EXPORTS` table, so
`from keras_squeezetime import SqueezeTime` counts as an import of the builder.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Source folder -> the package name it is installed as (setup.cfg package_dir).
PACKAGES = {"keras_squeezetime": "keras_squeezetime", "training": "keras_squeezetime.training",
            "tflite": "keras_squeezetime.tflite"}
FORBIDDEN = {
    "core": {"training", "tflite", "apps", "cli"},
    "training": {"tflite", "apps", "cli"},
    "tflite": {"apps", "cli"},
    "apps": {"cli"},
    "cli": set(),
}


@dataclasses.dataclass(frozen=True)
class Import:
    target: str  # a module of the package, or an outside top-level module
    line: int
    lazy: bool  # inside a function


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _facade_exports() -> dict[str, str]:
    """The package root's `_EXPORTS`: public name -> module that defines it."""
    tree = ast.parse((ROOT / "keras_squeezetime" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_EXPORTS":
            return ast.literal_eval(node.value)
    raise AssertionError("keras_squeezetime/__init__.py has no _EXPORTS table")


EXPORTS = _facade_exports()


def floor(module: str) -> str:
    if module == "keras_squeezetime":
        return "facade"
    if module.startswith("keras_squeezetime.apps"):
        return "apps"
    for package in ("keras_squeezetime.training", "keras_squeezetime.tflite"):
        if module == package or module.startswith(package + "."):
            rest = module[len(package):]
            return "cli" if rest == ".cli" or rest.startswith(".cli.") else package.split(".")[1]
    if module == "keras_squeezetime.cli" or module.startswith("keras_squeezetime.cli."):
        return "cli"
    return "core"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (getattr(test, "id", None) == "TYPE_CHECKING"
            or getattr(test, "attr", None) == "TYPE_CHECKING")


def imports_of(module: str) -> list[Import]:
    """Every import in the module's source, resolved to package modules where it can be."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return  # read by type checkers only
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(_resolve(alias.name), node.lineno, lazy))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package upwards
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                if candidate in MODULES:
                    target = candidate
                elif base == "keras_squeezetime" and alias.name in EXPORTS:
                    target = EXPORTS[alias.name]
                else:
                    target = _resolve(base)
                found.append(Import(target, node.lineno, lazy))
        for child in ast.iter_child_nodes(node):
            visit(child, lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.Lambda)))

    visit(tree, False)
    return found


def _resolve(name: str) -> str:
    """The longest package module `name` names, or its top-level name outside the package."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return parts[0]


def _package_imports() -> dict[str, list[Import]]:
    return {module: [i for i in imports_of(module) if i.target in MODULES] for module in MODULES}


GRAPH = _package_imports()


def test_every_module_is_found_and_classified():
    floors = {floor(m) for m in MODULES}
    assert floors == {"facade", "core", "training", "tflite", "apps", "cli"}
    assert floor("keras_squeezetime.model_loading") == "core"
    assert floor("keras_squeezetime.training.cli.train") == "cli"
    assert floor("keras_squeezetime.tflite.export") == "tflite"
    assert floor("keras_squeezetime.apps.predictor") == "apps"


def test_imports_go_down_the_floors():
    violations = [
        f"{module} ({floor(module)}) imports {i.target} ({floor(i.target)}) at line {i.line}"
        f"{' (inside a function)' if i.lazy else ''}"
        for module, found in GRAPH.items()
        for i in found
        if floor(i.target) in FORBIDDEN.get(floor(module), set())
    ]
    assert not violations, "\n".join(violations)


def _cycles(modules: set[str]) -> list[list[str]]:
    """Elementary cycles' representatives: one cycle through each strongly connected group."""
    edges = {m: sorted({i.target for i in GRAPH[m] if i.target in modules and i.target != m})
             for m in modules}
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(modules):
        if module not in index:
            connect(module)
    return groups


def test_no_import_circle_between_core_modules():
    circles = _cycles({m for m in MODULES if floor(m) == "core"})
    assert not circles, f"modules importing each other: {circles}"


def test_no_import_circle_in_any_floor():
    circles = _cycles(set(MODULES) - {"keras_squeezetime"})
    assert not circles, f"modules importing each other: {circles}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(
    ("keras_squeezetime.layers", "keras_squeezetime.builder"))))
def test_layers_and_builder_use_keras_ops_only(module):
    outside = {i.target for i in imports_of(module)}
    assert not outside & {"tensorflow", "tf_keras", "jax", "torch"}, outside


def test_core_modules_load_without_tensorflow_and_without_private_apis():
    for module in (m for m in MODULES if floor(m) == "core"):
        eager = {i.target for i in imports_of(module) if not i.lazy}
        assert "tensorflow" not in eager, f"{module} imports TensorFlow when it is imported"
        source = MODULES[module].read_text()
        for private in ("keras.src", "tensorflow.python", "from keras._", "._symbolic_build"):
            assert private not in source, f"{module} uses the private {private!r}"
