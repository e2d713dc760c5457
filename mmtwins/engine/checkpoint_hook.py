"""MMEngine's ``CheckpointHook``, made crash-safe and exactly resumable.

MMEngine 0.10.7 has four problems for a run that can be killed at any moment:

* ``CheckpointHook._save_checkpoint_with_step`` removes the oldest checkpoint (beyond
  ``max_keep_ckpts``) *before* writing the new one, and writes ``last_checkpoint`` in place:
  a kill in between leaves fewer checkpoints than promised, or an empty ``last_checkpoint``.
  ``_save_best_checkpoint`` likewise removes the previous best checkpoint first.
* Runner checkpoints hold no random generator states, so a resumed run draws other
  augmentations, dropout masks and data loader seeds than the run it continues.
* Validation draws from the same generators as training (its data loader seeds torch's), so
  a run's training depends on whether, and where, validation happened.
* On resume, ``IterBasedTrainLoop`` draws again the batches already trained, through the
  random data pipeline, before the first new one; ``EpochBasedTrainLoop`` resumes a checkpoint
  saved within an epoch from the epoch's start (:class:`mmtwins.engine.EpochBasedTrainLoop`
  draws the trained batches again instead, with the states of the epoch's start, which this
  hook saves too).

:class:`CheckpointHook` writes the checkpoint (atomically, through
:meth:`mmtwins.engine.Runner.save_checkpoint`), then ``last_checkpoint`` (atomically), and
only then removes outdated (and previous best) checkpoints; it saves the random states into
every checkpoint and restores them when training resumes from it (after that replay); and it
runs validation on a copy of the random states, so training continues after it as if it had
not run.
"""
import inspect
import math
from typing import Iterator, List, Optional, Sequence

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook
from mmengine.runner import EpochBasedTrainLoop as MMEngineEpochBasedTrainLoop
from mmengine.runner import IterBasedTrainLoop

from mmtwins.registry import HOOKS
from mmtwins.utils.atomic_files import write_text_atomically
from .loops import EpochBasedTrainLoop
from .random_states import RandomStates, capture_random_states, restore_random_states
from .runner import Runner

#: The checkpoint key of the random states.
RANDOM_STATES_KEY = 'random_states'
#: The checkpoint key of the random states its epoch started drawing batches with.
EPOCH_START_STATES_KEY = 'epoch_start_random_states'


@HOOKS.register_module()
class CheckpointHook(MMEngineCheckpointHook):
    """Saves checkpoints crash-safely, with the random states an exact resume needs.

    Takes the arguments of ``mmengine.hooks.CheckpointHook``. It needs the runner of the
    mmtwins tools, :class:`mmtwins.engine.Runner`, whose checkpoint writes are atomic.

    Example:
        >>> default_hooks = dict(
        ...     checkpoint=dict(type='mmtwins.CheckpointHook', interval=1, max_keep_ckpts=3))
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._states_before_validation: Optional[RandomStates] = None
        self._loaded_states: Optional[RandomStates] = None
        self._loaded_epoch_start_states: Optional[RandomStates] = None
        self._loaded_iter: Optional[int] = None

    def before_run(self, runner) -> None:
        if not isinstance(runner, Runner):
            raise TypeError(
                f'mmtwins.CheckpointHook needs mmtwins.engine.Runner, whose checkpoint '
                f'writes are atomic; got {type(runner).__module__}.{type(runner).__name__}. '
                f'Run it with tools/train.py, or build mmtwins.engine.Runner.from_cfg(cfg).')
        # MMEngine passes the options it does not know on to every save_checkpoint call:
        # a misspelt one would fail only at the first save, after an epoch of training.
        unknown = sorted(set(self.args) - set(inspect.signature(runner.save_checkpoint).parameters))
        if unknown:
            raise TypeError(f'CheckpointHook got unknown options {", ".join(unknown)} '
                            f'(default_hooks.checkpoint in a config)')
        super().before_run(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        _refuse_a_diverged_run(runner)
        # A checkpoint saved during validation (the best one) records the states that
        # training continues from, not those validation has drawn from since.
        checkpoint[RANDOM_STATES_KEY] = (self._states_before_validation
                                         or capture_random_states())
        epoch_start_states = getattr(runner.train_loop, 'epoch_start_states', None)
        if epoch_start_states is not None:
            checkpoint[EPOCH_START_STATES_KEY] = epoch_start_states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded_states = checkpoint.get(RANDOM_STATES_KEY)
        self._loaded_epoch_start_states = checkpoint.get(EPOCH_START_STATES_KEY)
        self._loaded_iter = checkpoint.get('meta', {}).get('iter')

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._loaded_iter is not None and 0 < runner.iter == self._loaded_iter:
            _restore_when_training_continues(runner, self._loaded_states,
                                             self._loaded_epoch_start_states)
        self._loaded_states = self._loaded_epoch_start_states = self._loaded_iter = None

    def before_val(self, runner) -> None:
        self._states_before_validation = capture_random_states()

    def after_val(self, runner) -> None:
        restore_random_states(self._states_before_validation)
        self._states_before_validation = None

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        """Writes the checkpoint, then ``last_checkpoint``, then removes outdated ones."""
        outdated = self._keep(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        write_text_atomically(self.file_backend.join_path(runner.work_dir, 'last_checkpoint'),
                              self.last_ckpt)
        if outdated is not None:
            self._remove(self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated)))

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        """MMEngine's, with the removal of the previous best deferred until the new is saved."""
        backend = self.file_backend
        self.file_backend = _DeferredRemovals(backend)
        try:
            super()._save_best_checkpoint(runner, metrics)
            removals = self.file_backend.pending
        finally:
            self.file_backend = backend
        for path in removals:
            self._remove(path)

    def _keep(self, runner, step: int) -> Optional[int]:
        """Records ``step`` among the kept checkpoints; returns the step it pushes out."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None
        outdated = (self.keep_ckpt_ids.popleft()
                    if len(self.keep_ckpt_ids) == self.max_keep_ckpts else None)
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        return outdated

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed checkpoints are folders
            self.file_backend.rmtree(path)


class _DeferredRemovals:
    """A file backend that records the paths to remove instead of removing them.

    Args:
        backend: The backend every other call goes to.
    """

    def __init__(self, backend) -> None:
        self._backend = backend
        self.pending: List[str] = []

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def remove(self, path: str) -> None:
        self.pending.append(path)

    def rmtree(self, path: str) -> None:
        self.pending.append(path)


def _refuse_a_diverged_run(runner) -> None:
    """Raises rather than save a checkpoint when the last training loss is not finite.

    MMEngine 0.10.7 trains on with a NaN loss and saves its weights, removing good
    checkpoints beyond ``max_keep_ckpts``.
    """
    losses = runner.message_hub.log_scalars.get('train/loss')
    if losses is None:
        return
    loss = float(losses.current())
    if not math.isfinite(loss):
        raise FloatingPointError(
            f'training loss {loss} at iteration {runner.iter}: the run diverged. No checkpoint '
            f'is saved from it, and those saved before are kept: resume from one of them '
            f'with a lower learning rate, for example.')


def _restore_when_training_continues(runner, states: Optional[RandomStates],
                                     epoch_start_states: Optional[RandomStates]) -> None:
    """Restores the random states of the checkpoint a run resumes from, at the right time."""
    loop = runner.train_loop
    if states is None:
        runner.logger.warning(
            'The checkpoint holds no random states (it was not written by '
            'mmtwins.CheckpointHook): training continues, but draws other random '
            'numbers than the interrupted run would have.')
    elif isinstance(loop, IterBasedTrainLoop):
        loop.dataloader_iterator = _RestoreAfterReplay(
            loop.dataloader_iterator, replayed=runner.iter, states=states)
    elif isinstance(loop, EpochBasedTrainLoop) and loop.trained_in_epoch:
        if epoch_start_states is None:
            runner.logger.warning(
                'The checkpoint, saved within an epoch, holds no random states of the '
                'epoch\'s start: the epoch continues with the batches the interrupted run '
                'would have drawn, augmented with other random numbers.')
        loop.resume_within_epoch(epoch_start_states, states)
        _warn_if_workers_persist(runner)
    else:
        if isinstance(loop, MMEngineEpochBasedTrainLoop) and \
                runner.iter % len(loop.dataloader):
            runner.logger.warning(
                f'The checkpoint was saved within an epoch (iteration {runner.iter}): '
                f'{type(loop).__name__} trains that epoch again from its first batch. '
                f'With train_cfg type=\'mmtwins.EpochBasedTrainLoop\' the run continues '
                f'where it stopped, exactly.')
        restore_random_states(states)
        _warn_if_workers_persist(runner)


class _RestoreAfterReplay:
    """The batches of an iteration-based loop, with the random states restored on time.

    On resume, MMEngine 0.10.7's ``IterBasedTrainLoop`` draws (and discards) the batches of
    the iterations already trained, through the data pipeline and its random numbers, after
    the ``before_train`` hooks. The states of the checkpoint are restored once those batches
    are drawn, right before the first new one.

    Args:
        batches: The loop's ``dataloader_iterator``.
        replayed: How many batches the loop draws again.
        states: The random states of the checkpoint.
    """

    def __init__(self, batches: Iterator, replayed: int, states: RandomStates) -> None:
        self._batches = batches
        self._replayed = replayed
        self._states = states
        self._drawn = 0

    def __iter__(self) -> '_RestoreAfterReplay':
        return self

    def __next__(self) -> Sequence[dict]:
        if self._drawn == self._replayed:
            restore_random_states(self._states)
        self._drawn += 1
        return next(self._batches)


def _warn_if_workers_persist(runner) -> None:
    """Warns that persistent data loader workers make a resumed run draw other numbers."""
    loader = runner.train_dataloader
    if getattr(loader, 'persistent_workers', False) and loader.num_workers > 0:
        runner.logger.warning(
            'The training data loader keeps its workers (persistent_workers=True): their '
            'random states live in the worker processes, which no checkpoint holds, so the '
            'resumed run augments differently than the interrupted run would have. Set '
            'train_dataloader.persistent_workers=False for an exact resume.')
