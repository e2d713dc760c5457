"""tools/analysis/get_flops.py: one table for models of every task, clear errors."""
import importlib.util
import re

import pytest

from tests.helpers import REPO_ROOT
from tests.test_tools.complexity_helpers import write_tiny_configs

TOOL = REPO_ROOT / 'tools' / 'analysis' / 'get_flops.py'


@pytest.fixture(scope='module')
def get_flops():
    """The tool as a module, to call its ``main`` in this process."""
    spec = importlib.util.spec_from_file_location('get_flops', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(output: str) -> dict:
    """Table rows by model: the cells after the model name."""
    rows = [line.strip('| ').split(' | ') for line in output.splitlines()
            if line.startswith('| ') and not line.startswith('| model')]
    return {row[0]: row[1:] for row in rows}


def test_counts_a_classifier_a_segmentor_and_a_detector(get_flops, capsys, tmp_path):
    configs = write_tiny_configs(tmp_path)
    assert get_flops.main([*map(str, configs.values()), '--shape', '100', '140',
                           '--per-module', '1']) == 0
    output = capsys.readouterr().out
    rows = _rows(output)
    tasks_and_inputs = [rows[str(path)][:2] for path in configs.values()]
    assert tasks_and_inputs == [['classification', '100 x 140'],
                                ['segmentation', '100 x 140'],
                                ['detection', '128 x 160']]  # padded to 32 by mmdet
    for path in configs.values():
        assert float(rows[str(path)][4]) > 0, path  # FLOPs (G)
        assert f'## {path}' in output  # its per-module table
    assert '|  roi_head ' in output
    assert 'aten::add, ' in output.split('counted as 0 FLOPs')[1]


def test_zoo_model_is_compared_with_its_published_figure(get_flops, capsys):
    assert get_flops.main(['davit-t*']) == 0
    output = capsys.readouterr().out
    row = _rows(output)['davit-t_4xb256_in1k']
    assert row[:4] == ['classification', '224 x 224', '28.36', '28,360,168']
    assert row[5] == '4.54'  # published
    assert abs(float(row[6].rstrip('%'))) < 0.1  # difference
    assert 'leave out the attention products' not in output


def test_twins_figure_is_also_compared_without_the_attention_products(get_flops, capsys):
    assert get_flops.main(['svt-s*']) == 0
    output = capsys.readouterr().out
    row = _rows(output)['svt-s_8xb128_in1k']
    assert row[5] == '2.82'  # published
    assert float(row[6].rstrip('%')) > 4  # difference of the full count
    note = output.split('leave out the attention products')[1].splitlines()[1]
    attention, without, difference = re.fullmatch(
        r'svt-s_8xb128_in1k: (\S+) G of attention products; without them (\S+) G, (\S+)%',
        note).groups()
    assert float(without) == pytest.approx(float(row[4]) - float(attention), abs=1e-3)
    assert abs(float(difference)) < 0.5


@pytest.mark.parametrize('argument, message', [
    ('svt-xs_8xb128_in1k', "unknown model name 'svt-xs_8xb128_in1k'. Did you mean"),
    ('nope*', "'nope*' matches no zoo model"),
    ('configs/nope.py', "config file 'configs/nope.py' does not exist"),
    ('configs/_base_/default_runtime.py', "default_runtime.py' defines no model"),
])
def test_a_model_that_cannot_be_built_is_named_in_the_error(get_flops, capsys, argument,
                                                            message):
    assert get_flops.main([argument]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize('shape', [['1', '2', '3'], ['-64']])
def test_shape_takes_one_or_two_positive_sides(get_flops, capsys, shape):
    with pytest.raises(SystemExit):
        get_flops.parse_args(['svt-s_8xb128_in1k', '--shape', *shape])
    assert '--shape takes H and W, or one side, positive' in capsys.readouterr().err
    assert get_flops.parse_args(['m', '--shape', '384']).shape == [384]
