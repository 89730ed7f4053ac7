"""The examples in the code's docstrings run as written."""

import doctest
import importlib
import pkgutil

import pytest

import embeddings
import qa

MODULES = ["app"] + [f"{package.__name__}.{module.name}" for package in (qa, embeddings)
                     for module in pkgutil.iter_modules(package.__path__)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
