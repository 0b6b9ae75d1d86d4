"""The product's errors live in one tree, in core/errors.py, and its docstring draws it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import core.errors
from core.errors import PipelineError

PRODUCT_PACKAGES = ("core", "schemas", "processors", "sinks", "cqrs", "aggregates", "deploy")

# Exceptions the product defines outside the tree on purpose (each says why where defined).
OUTSIDE_THE_TREE = {
    "cqrs.query.problems.Problem",  # an HTTP answer the query service renders
    "schemas.registry.state.ApiError",  # the embedded registry's HTTP answer, Confluent codes
    "processors.transactional_loop.GaveUpError",  # a KafkaException for the loop's recovery
    "sinks.runner._AbandonedError",  # private control flow
}

_TREE_LINE = re.compile(r"^    (?P<lead>(?:│   |    )*)(?:[├└]── )?(?P<name>[A-Z]\w+)\s")


def product_modules() -> list[ModuleType]:
    modules = []
    for package_name in PRODUCT_PACKAGES:
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if not info.name.endswith(".__main__"):  # runs the CLI when imported
                modules.append(importlib.import_module(info.name))
    return modules


def defined_exceptions(module: ModuleType) -> list[type[BaseException]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]


def drawn_tree() -> list[tuple[int, str]]:
    """(depth, class name) for each line of the tree in the module docstring."""
    doc = core.errors.__doc__ or ""
    lines = []
    for line in doc.splitlines():
        if (match := _TREE_LINE.match(line)) and ("──" in line or line.strip().startswith("Pipe")):
            depth = len(match["lead"]) // 4 + (1 if "──" in line else 0)
            lines.append((depth, match["name"]))
    return lines


def test_every_product_exception_is_in_core_errors_under_pipeline_error() -> None:
    modules = product_modules()
    assert len(modules) > 100  # the walk found the product, not just its packages
    stray = []
    for module in modules:
        for error in defined_exceptions(module):
            name = f"{module.__name__}.{error.__qualname__}"
            if name in OUTSIDE_THE_TREE:
                continue
            if module is not core.errors or not issubclass(error, PipelineError):
                stray.append(name)
    assert stray == [], f"define these in core/errors.py under PipelineError: {stray}"


def test_the_allow_list_names_classes_that_exist() -> None:
    for name in OUTSIDE_THE_TREE:
        module_name, _, class_name = name.rpartition(".")
        error = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(error, Exception) and not issubclass(error, PipelineError), name


def test_the_docstring_draws_exactly_the_module_s_tree() -> None:
    drawn = drawn_tree()
    classes = {error.__name__: error for error in defined_exceptions(core.errors)}
    assert sorted(name for _, name in drawn) == sorted(classes)
    assert drawn[0] == (0, "PipelineError")
    parents: list[str] = []
    for depth, name in drawn:
        del parents[depth:]
        if parents:
            parent = parents[-1]
            assert classes[name].__bases__[0] is classes[parent], f"{name} drawn under {parent}"
        parents.append(name)


def test_the_domain_errors_stay_the_public_api() -> None:
    import cqrs

    assert cqrs.DomainError is core.errors.DomainError
    assert cqrs.VersionConflictError is core.errors.VersionConflictError
