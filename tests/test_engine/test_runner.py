"""Runner checkpoints of mmtwins save, resume and load under torch's weights_only default."""
import itertools
import os
import os.path as osp
import pickle
import shutil
import subprocess
from copy import deepcopy

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner as MMEngineRunner
from torch._dynamo.utils import counters
from torch.utils.data import Dataset

from mmtwins.converters import CheckpointError, read_checkpoint
from mmtwins.converters.checkpoint import fit_mismatches
from mmtwins.engine import Runner
from mmtwins.engine import runner as runner_module
from mmtwins.models.backbones import TwinsSVT
from mmtwins.utils import INDUCTOR_OPTIONS
from tests.helpers import TINY_SVT


# MMEngine keys its global logger and visualizer by experiment name: keep each runner's own.
_experiment_ids = itertools.count()


class ForwardOnlyRegressor(BaseModel):
    """A model with no ``loss`` method: its forward computes the losses itself."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, targets, mode='tensor'):
        outputs = self.linear(inputs).squeeze(1)
        return self.squared_error(outputs, targets) if mode == 'loss' else outputs

    @staticmethod
    def squared_error(outputs, targets):
        return dict(loss=((outputs - targets)**2).mean())


class ToyRegressor(ForwardOnlyRegressor):
    """Its forward dispatches to ``loss`` in loss mode, as mmpretrain, mmseg and mmdet's."""

    def forward(self, inputs, targets, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, targets)
        return super().forward(inputs, targets, mode)

    def loss(self, inputs, targets):
        return self.squared_error(self.linear(inputs).squeeze(1), targets)


class ToyDataset(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, index):
        inputs = torch.randn(2, generator=torch.Generator().manual_seed(index))
        return dict(inputs=inputs, targets=inputs.sum())


def build_runner(work_dir, runner_class=Runner, max_epochs=2, model_class=ToyRegressor,
                 seed=0, **kwargs):
    return runner_class(
        model=model_class(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=4, by_epoch=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=seed),
        experiment_name=f'toy-{next(_experiment_ids)}',
        **kwargs)


@pytest.fixture(scope='module')
def trained_work_dir(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('runner'))
    build_runner(work_dir).train()
    return work_dir


def test_runner_checkpoint_needs_the_trusted_path(trained_work_dir):
    checkpoint = osp.join(trained_work_dir, 'epoch_2.pth')
    # The upstream problem this works around: weights_only=True refuses the message hub.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(checkpoint, weights_only=True)
    loaded = read_checkpoint(checkpoint)
    assert loaded['meta']['epoch'] == 2
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)


def test_resume_continues_from_the_saved_state(trained_work_dir):
    saved = read_checkpoint(osp.join(trained_work_dir, 'epoch_2.pth'))
    runner = build_runner(trained_work_dir, max_epochs=3, resume=True)
    runner.load_or_resume()
    assert runner.epoch == 2 and runner.iter == 8
    for name, value in runner.model.state_dict().items():
        assert torch.equal(value, saved['state_dict'][name])
    optimizer_state = runner.optim_wrapper.state_dict()['state'][0]
    assert torch.equal(optimizer_state['exp_avg'], saved['optimizer']['state'][0]['exp_avg'])
    assert runner.param_schedulers[0].last_step == saved['param_schedulers'][0]['last_step']
    runner.train()
    assert runner.epoch == 3
    assert osp.isfile(osp.join(trained_work_dir, 'epoch_3.pth'))


def test_a_randomly_seeded_run_resumes_with_its_own_seed(tmp_path):
    """The configs' ``seed=None`` draws a seed per run; the data order must follow the
    seed of the run that is continued, from the first resumed epoch on."""
    uninterrupted = build_runner(str(tmp_path / 'uninterrupted'), seed=None)
    uninterrupted.train()
    resumed = build_runner(str(tmp_path / 'resumed'), seed=None, resume=True,
                           load_from=str(tmp_path / 'uninterrupted' / 'epoch_1.pth'))
    assert resumed.seed != uninterrupted.seed
    resumed.train()
    assert resumed.train_dataloader.sampler.seed == uninterrupted.seed
    assert torch.equal(resumed.model.linear.weight, uninterrupted.model.linear.weight)



def copied_work_dir(trained_work_dir, tmp_path) -> str:
    copy = str(tmp_path / 'copy')
    shutil.copytree(trained_work_dir, copy)
    return copy


def test_a_copied_or_moved_work_dir_resumes_from_its_own_checkpoint(trained_work_dir,
                                                                     tmp_path):
    copy = copied_work_dir(trained_work_dir, tmp_path)
    with open(osp.join(copy, 'last_checkpoint')) as record:
        latest = record.read()
    assert osp.dirname(latest) == trained_work_dir
    runner = build_runner(copy, max_epochs=5, resume=True)
    runner.load_or_resume()
    assert runner._load_from == osp.join(copy, osp.basename(latest))
    with open(osp.join(copy, 'last_checkpoint'), 'w') as record:  # the original moved
        record.write(osp.join(str(tmp_path / 'gone'), osp.basename(latest)))
    runner = build_runner(copy, max_epochs=5, resume=True)
    runner.load_or_resume()
    assert runner._load_from == osp.join(copy, osp.basename(latest))


@pytest.mark.parametrize('remove, message', [
    ('last_checkpoint', r'cannot resume: .*copy holds checkpoints \(epoch_1.pth, '
                        r'epoch_2.pth.*\) but no last_checkpoint file'),
    ('latest', r'cannot resume: .*last_checkpoint names .*epoch_\d.pth, which does not exist'),
])
def test_resume_refuses_to_start_over_an_unresumable_work_dir(trained_work_dir, tmp_path,
                                                             remove, message):
    copy = copied_work_dir(trained_work_dir, tmp_path)
    record = osp.join(copy, 'last_checkpoint')
    if remove == 'latest':
        with open(record) as file:
            latest = file.read()
        with open(record, 'w') as file:  # the copy's own checkpoint, then deleted
            file.write(osp.join(copy, osp.basename(latest)))
        os.remove(osp.join(copy, osp.basename(latest)))
    else:
        os.remove(record)
    runner = build_runner(copy, max_epochs=5, resume=True)
    with pytest.raises(CheckpointError, match=message):
        runner.train()
    assert runner.epoch == 0


def test_resume_from_a_missing_file_names_it(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    runner = build_runner(str(tmp_path / 'work'), resume=True, load_from=missing)
    with pytest.raises(CheckpointError, match=f'cannot resume from {missing}: no such file'):
        runner.train()


def test_mmengine_runner_cannot_resume_under_weights_only(trained_work_dir, tmp_path):
    runner = build_runner(
        str(tmp_path), runner_class=MMEngineRunner, max_epochs=3,
        resume=True, load_from=osp.join(trained_work_dir, 'epoch_2.pth'))
    with pytest.raises(pickle.UnpicklingError):
        runner.load_or_resume()


def test_load_from_initialises_the_weights(trained_work_dir, tmp_path):
    runner = build_runner(str(tmp_path), load_from=osp.join(trained_work_dir, 'epoch_1.pth'))
    runner.load_or_resume()
    saved = read_checkpoint(osp.join(trained_work_dir, 'epoch_1.pth'))
    assert torch.equal(runner.model.linear.weight, saved['state_dict']['linear.weight'])
    assert runner.epoch == 0


class _Payload:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _AttributeProbe:

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize('payload_class', [_Payload, _AttributeProbe])
def test_trusted_path_still_refuses_pickled_code(tmp_path, payload_class):
    marker = tmp_path / 'executed'
    payload = payload_class(marker) if payload_class is _Payload else payload_class()
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': payload}, path)
    with pytest.raises(ValueError, match='refused to load'):
        read_checkpoint(str(path))
    assert not marker.exists()


@pytest.mark.parametrize('compile_cfg, expected', [
    (True, dict(dynamic=False, options=INDUCTOR_OPTIONS)),
    (dict(fullgraph=False, options=dict(freezing=True)),
     dict(fullgraph=False, dynamic=False, options=dict(INDUCTOR_OPTIONS, freezing=True))),
])
def test_compile_setting_goes_through_compile_model(torch_compile_calls, tmp_path, compile_cfg,
                                                    expected):
    runner = build_runner(str(tmp_path), max_epochs=1, cfg=dict(compile=compile_cfg))
    runner.train()
    assert torch_compile_calls == [expected]
    assert osp.isfile(tmp_path / 'epoch_1.pth')


@pytest.mark.parametrize('compile_cfg', [None, False])
def test_no_compile_setting_compiles_nothing(torch_compile_calls, tmp_path, compile_cfg):
    build_runner(str(tmp_path), max_epochs=1, cfg=dict(compile=compile_cfg)).train()
    assert torch_compile_calls == []


def test_compile_setting_of_another_type_is_refused(tmp_path):
    runner = build_runner(str(tmp_path), max_epochs=1, cfg=dict(compile='inductor'))
    with pytest.raises(TypeError, match="`compile` must be a bool or a dict.*'inductor'"):
        runner.train()


def compiled_graphs(runner_class, work_dir: str, max_epochs: int,
                    model_class=ToyRegressor, **compile_cfg) -> int:
    """How many graphs dynamo compiles while ``runner_class`` trains ``max_epochs``.

    The learning rate changes from one epoch to the next (a cosine schedule over epochs).
    """
    torch._dynamo.reset()
    counters.clear()
    runner = build_runner(work_dir, runner_class=runner_class, max_epochs=max_epochs,
                          model_class=model_class, cfg=dict(compile=dict(compile_cfg)))
    initial_weight = runner.model.linear.weight.detach().clone()
    runner.train()
    assert not torch.equal(runner.model.linear.weight, initial_weight)
    assert osp.isfile(osp.join(work_dir, f'epoch_{max_epochs}.pth'))
    return counters['stats']['unique_graphs']


def test_compiled_loss_is_not_recompiled_when_the_learning_rate_changes(tmp_path):
    assert compiled_graphs(Runner, str(tmp_path / 'ours'), 2, backend='eager') == 1
    # The upstream problem: MMEngine compiles train_step, optimizer step included, and
    # its guards hold the learning rate, so a new epoch compiles new graphs.
    graphs = [compiled_graphs(MMEngineRunner, str(tmp_path / f'mmengine{epochs}'), epochs,
                              backend='eager') for epochs in (1, 2)]
    assert graphs[1] > graphs[0]


def test_compiled_training_runs_inductor(tmp_path):
    assert compiled_graphs(Runner, str(tmp_path), 1) == 1


def test_a_model_without_loss_gets_its_forward_compiled(tmp_path):
    assert compiled_graphs(Runner, str(tmp_path), 1, ForwardOnlyRegressor,
                           backend='eager') == 1


def test_validation_stays_eager(tmp_path):
    torch._dynamo.reset()
    counters.clear()
    runner = build_runner(str(tmp_path), max_epochs=1, cfg=dict(compile=dict(backend='eager')))
    runner.train()
    assert counters['stats']['unique_graphs'] == 1
    outputs = runner.model.val_step(dict(inputs=torch.randn(4, 2), targets=torch.zeros(4)))
    assert outputs.shape == (4, )
    assert counters['stats']['unique_graphs'] == 1


def test_copy_of_the_compiled_model_computes_with_its_own_weights(tmp_path):
    # What EMA does: a compiled function holding the model would compute with its weights.
    runner = build_runner(str(tmp_path), max_epochs=1, cfg=dict(compile=dict(backend='eager')))
    runner.train()
    copy = deepcopy(runner.model)
    with torch.no_grad():
        copy.linear.weight.zero_()
        copy.linear.bias.fill_(3.0)
    inputs, targets = torch.randn(4, 2), torch.full((4, ), 1.0)
    assert copy(inputs, targets, mode='loss')['loss'].item() == 4.0
    assert runner.model(inputs, targets, mode='loss')['loss'].item() != 4.0


def test_only_a_dense_backbones_stage_norms_may_be_extra():
    model = nn.Module()
    model.backbone = TwinsSVT(arch=TINY_SVT)
    weights = {f'backbone.{k}': v for k, v in model.backbone.state_dict().items()}
    dense = TwinsSVT(arch=TINY_SVT, norm_after_stage=True).state_dict()
    weights.update({f'backbone.{k}': v for k, v in dense.items() if '.norm.' in k})
    assert fit_mismatches(model, weights) == []
    weights['backbone.stages.3.blocks.2.mlp.fc1.weight'] = torch.zeros(1)
    assert fit_mismatches(model, weights) == [
        'backbone.stages.3.blocks.2.mlp.fc1.weight: not in the model']


def test_a_save_removes_the_temporaries_of_writers_killed_before(tmp_path):
    finished = subprocess.Popen(['true'])
    finished.wait()
    stale = tmp_path / f'.epoch_1.pth.{finished.pid}.tmp'
    running = tmp_path / f'.epoch_1.pth.{os.getppid()}.tmp'
    for partial in (stale, running):
        partial.write_bytes(b'half a checkpoint')
    build_runner(str(tmp_path), max_epochs=1).train()
    assert not stale.exists() and running.exists()
    assert (tmp_path / 'epoch_1.pth').is_file()


def test_resume_reads_the_checkpoint_once(trained_work_dir, tmp_path, monkeypatch):
    work_dir = shutil.copytree(trained_work_dir, tmp_path / 'work_dir')
    last = work_dir / osp.basename((work_dir / 'last_checkpoint').read_text().strip())
    epochs = read_checkpoint(str(last))['meta']['epoch']
    reads = []
    monkeypatch.setattr(runner_module, 'read_checkpoint',
                        lambda path, *args: reads.append(path) or read_checkpoint(path, *args))
    runner = build_runner(str(work_dir), max_epochs=epochs + 1, resume=True)
    runner.train()
    assert runner.epoch == epochs + 1
    assert reads == [str(last)]  # twice before: for the seed, then for the weights
    assert runner._read_ahead is None
