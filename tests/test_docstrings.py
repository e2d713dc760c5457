"""mmtwins' docstrings: their ``Example:`` sections run and print what they show, and
their ``Args:`` sections name the parameters of their signatures.

Examples that need files of the user's (weights, datasets, work dirs) or minutes
(compiling, training) mark those lines ``# doctest: +SKIP``; everything else runs.
"""
import doctest
import importlib
import inspect
import pkgutil
import re
from types import ModuleType
from typing import Callable, Iterator, List, Optional, Tuple

import pytest
from mmengine.logging import MMLogger

import mmtwins
from tests.helpers import REPO_ROOT

MODULES = sorted(info.name for info in pkgutil.walk_packages(mmtwins.__path__, 'mmtwins.'))


@pytest.mark.parametrize('module_name', MODULES)
def test_examples_run(module_name, monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)  # examples name configs and images relative to the repo
    # MMEngine's logger writes to the stdout of when it was created: created now, its
    # INFO lines (a data preprocessor's note) do not land in an example's output.
    MMLogger.get_current_instance()
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, capsys.readouterr().out


def documented_args(docstring: str) -> Optional[List[str]]:
    """The names listed in a Google-style ``Args:`` section (``*`` stripped), or None."""
    lines = inspect.cleandoc(docstring).splitlines()
    if 'Args:' not in (line.strip() for line in lines):
        return None
    start = [line.strip() for line in lines].index('Args:') + 1
    names, indent = [], None
    for line in lines[start:]:
        if not line.strip():
            continue
        line_indent = len(line) - len(line.lstrip())
        if line_indent == 0:
            break  # the next section
        indent = indent or line_indent
        match = re.match(r'\s*\**(\w+)( \(.*\))?:', line)
        if line_indent == indent and match:
            names.append(match.group(1))
    return names


def documented_callables(module: ModuleType) -> Iterator[Tuple[str, str, Callable]]:
    """``(name, docstring, function)`` of the module's own functions, classes (whose
    docstring documents ``__init__``) and the classes' methods."""
    for name, obj in vars(module).items():
        if getattr(obj, '__module__', None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield name, obj.__doc__, obj
        elif inspect.isclass(obj):
            yield name, obj.__doc__, obj.__init__
            yield from ((f'{name}.{attr}', value.__doc__, value)
                        for attr, value in vars(obj).items() if inspect.isfunction(value))


@pytest.mark.parametrize('module_name', MODULES)
def test_args_sections_match_signatures(module_name):
    wrong = []
    for name, docstring, function in documented_callables(importlib.import_module(module_name)):
        names = documented_args(docstring or '')
        if names is None:
            continue
        parameters = set(inspect.signature(function).parameters) - {'self', 'cls'}
        if set(names) != parameters:
            wrong.append(f'{name}: documents {sorted(set(names) - parameters)} not in its '
                         f'signature, misses {sorted(parameters - set(names))}')
    assert not wrong, '\n'.join(wrong)
