"""tools/analysis/benchmark.py on tiny models: well-formed output, every option runs.

No timing is asserted: only that the numbers are there and positive.
"""
import importlib.util
import re

import pytest
import torch

from tests.helpers import REPO_ROOT, TINY_DAVIT, TINY_SVT, python_tool
from tests.test_tools.detection_helpers import TRAINED_CONFIGS, tiny_detection_config

FAST = ['--batch-size', '2', '--input-size', '64', '--warmup', '1', '--iters', '1',
        '--rounds', '2']
NUMBER = r'(\d+\.\d+)'


def tiny_config(tmp_path, base_config: str, arch: dict) -> str:
    """A config file of one of the zoo's classifiers, shrunk to ``arch``."""
    path = tmp_path / f'tiny_{len(list(tmp_path.iterdir()))}.py'
    path.write_text(f"""
_base_ = [{str(REPO_ROOT / base_config)!r}]
model = dict(backbone=dict(arch=dict(_delete_=True, **{arch!r})),
             neck=dict(in_channels={arch['embed_dims'][-1]}),
             head=dict(num_classes=10, in_channels={arch['embed_dims'][-1]}))
""")
    return str(path)


@pytest.fixture(scope='module')
def benchmark():
    spec = importlib.util.spec_from_file_location(
        'benchmark', REPO_ROOT / 'tools' / 'analysis' / 'benchmark.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measured(output: str, key: str, label: str) -> float:
    return float(re.search(rf'^  {key} +{label} +{NUMBER}', output, re.M).group(1))


def test_command_line_inference_training_and_ratios(tmp_path):
    config = tiny_config(tmp_path, 'configs/twins/svt-s_8xb128_in1k.py', TINY_SVT)
    result = python_tool('analysis/benchmark.py', config, *FAST, '--threads', '1',
                         '--train', '--timer', 'cpu')
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert 'cpu, 1 threads, cpu clock, batch 2, 64x64, fp32, eager' in out
    assert re.search(r'timm: Twins, mmtwins 0\.\d\d M params, timm 0\.\d\d M params', out)
    for key in ('inference', 'train'):
        assert measured(out, key, 'mmtwins') > 0 and measured(out, key, 'timm') > 0
        assert re.search(rf'^  {key} +ratio +{NUMBER}x mmtwins/timm', out, re.M)
    rows = re.findall(rf'^\| .*tiny_0\.py \| (\w+) \| {NUMBER} \| {NUMBER} \| {NUMBER}x \|$',
                      out, re.M)
    assert [row[0] for row in rows] == ['inference', 'train']


def test_bf16_channels_last_davit(benchmark, tmp_path, capsys):
    config = tiny_config(tmp_path, 'configs/davit/davit-t_4xb256_in1k.py', TINY_DAVIT)
    benchmark.main([config, *FAST, '--dtype', 'bf16', '--channels-last', '--train'])
    out = capsys.readouterr().out
    assert 'bf16, channels_last, eager' in out and 'timm: DaVit' in out
    assert measured(out, 'train', 'mmtwins') > 0 and measured(out, 'train', 'timm') > 0


def test_with_cp_lowers_the_peak_memory_of_a_training_step(benchmark, tmp_path, capsys):
    config = tiny_config(tmp_path, 'configs/twins/svt-s_8xb128_in1k.py', TINY_SVT)
    peaks = []
    for options in ([], ['--with-cp']):
        benchmark.main([config, *FAST, '--no-inference', '--memory', '--no-timm',
                        *options])
        out = capsys.readouterr().out
        assert 'no timm model compared' in out
        assert not re.search(r'^  .* ratio ', out, re.M)
        peaks.append(float(re.search(rf'train peak +mmtwins +{NUMBER} MiB', out).group(1)))
    assert 0 < peaks[1] < peaks[0]


def test_compile_compiles_every_model_afresh(benchmark, tmp_path, capsys, monkeypatch):
    # All models share the wrapper's forward: without a reset between models dynamo
    # would recompile it, and past its recompile limit run the later models eagerly.
    # The eager backend traces with dynamo and compiles nothing (fast).
    monkeypatch.setattr(benchmark, 'compile_model',
                        lambda model: torch.compile(model, backend='eager'))
    configs = [tiny_config(tmp_path, 'configs/twins/svt-s_8xb128_in1k.py', TINY_SVT),
               tiny_config(tmp_path, 'configs/davit/davit-t_4xb256_in1k.py', TINY_DAVIT)]
    with torch._dynamo.config.patch(error_on_recompile=True):
        benchmark.main([*configs, *FAST, '--compile', '--no-timm'])
    out = capsys.readouterr().out
    assert out.count('inference first call') == 2
    assert len(re.findall(r'inference +ratio +\d+\.\d+x mmtwins/eager', out)) == 2


@pytest.mark.parametrize('options, message', [
    (['--iters', '0'], 'must be at least 1'),
    (['--batch-size', '0'], 'must be at least 1'),
    (['--threads', '0'], '--threads must be at least 1'),
    (['--input-size', '0'], '--input-size takes one or two positive numbers'),
    (['--memory', '--compile'], 'run it without --compile'),
    (['--device', 'cuda', '--timer', 'cpu'], 'use the wall clock on a GPU'),
    (['--no-inference'], 'nothing to measure'),
])
def test_rejects_bad_arguments(benchmark, capsys, options, message):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(['svt-s_8xb128_in1k', *options])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_models_it_cannot_measure_end_in_one_line(benchmark, tmp_path):
    with pytest.raises(SystemExit, match="error: unknown model name 'svt-xs'"):
        benchmark.main(['svt-xs', *FAST])
    twins = tiny_config(tmp_path, 'configs/twins/svt-s_8xb128_in1k.py', TINY_SVT)
    with pytest.raises(SystemExit, match="error: --input-size 80 80: timm's Twins takes only "
                                         'multiples of its last stride, 32'):
        benchmark.main([twins, *FAST, '--input-size', '80'])


def test_a_two_stage_detector_gets_its_data_samples(benchmark, tmp_path, capsys):
    """Mask R-CNN's RPN reads the image size from the data samples of its forward."""
    config = tmp_path / 'mask_rcnn.py'
    config.write_text(tiny_detection_config(TRAINED_CONFIGS['mask-rcnn'], TINY_SVT, tmp_path, 1))
    benchmark.main([str(config), *FAST, '--rounds', '1', '--train'])
    output = capsys.readouterr().out
    assert 'no timm model compared' in output
    assert measured(output, 'inference', 'mmtwins') > 0
    assert measured(output, 'train', 'mmtwins') > 0
