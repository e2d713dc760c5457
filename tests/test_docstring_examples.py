"""The ``Example:`` sections of mmtwins' docstrings run and print what they show.

Examples that need files of the user's (weights, datasets, work dirs) or minutes
(compiling, training) mark those lines ``# doctest: +SKIP``; everything else runs.
"""
import doctest
import importlib
import pkgutil

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
