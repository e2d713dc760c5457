"""MMEngine's epoch-based training loop, resumable in the middle of an epoch."""
from typing import Optional, Tuple

from mmengine.runner import EpochBasedTrainLoop as MMEngineEpochBasedTrainLoop

from mmtwins.registry import LOOPS
from .random_states import RandomStates, capture_random_states, restore_random_states


@LOOPS.register_module()
class EpochBasedTrainLoop(MMEngineEpochBasedTrainLoop):
    """MMEngine's ``EpochBasedTrainLoop``, resuming a checkpoint saved within an epoch there.

    A checkpoint saved in the middle of an epoch (``CheckpointHook`` with ``by_epoch=False``)
    is resumed by MMEngine 0.10.7 from the start of that epoch: the epoch's first batches are
    trained a second time, and the run ends with more iterations and other weights than
    the interrupted one would have. This loop draws those batches again without training on
    them, as MMEngine's ``IterBasedTrainLoop`` does for its own resumes, from the random
    states the epoch started with (so that the data loader's workers are seeded, and draw,
    as they did); :class:`~mmtwins.engine.CheckpointHook` saves those states in every
    checkpoint and hands them over with the checkpoint's own states, which are restored
    before the first new batch.

    Takes the arguments of MMEngine's loop.

    Example:
        >>> train_cfg = dict(type='mmtwins.EpochBasedTrainLoop', max_epochs=300)
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: The random states with which the current epoch started drawing its batches.
        self.epoch_start_states: Optional[RandomStates] = None
        self._resume_states: Optional[Tuple[Optional[RandomStates], RandomStates]] = None

    @property
    def trained_in_epoch(self) -> int:
        """How many batches of the current epoch were trained before a resume (else 0)."""
        trained = self._iter - self._epoch * len(self.dataloader)
        return trained if 0 < trained < len(self.dataloader) else 0

    def resume_within_epoch(self, epoch_start_states: Optional[RandomStates],
                            states: RandomStates) -> None:
        """Sets the random states that the resumed epoch draws its batches with.

        Args:
            epoch_start_states: Those with which the epoch started drawing its batches,
                restored before the batches already trained are drawn again; None
                (a checkpoint without them) draws them with the current states.
            states: Those of the checkpoint, restored before the first new batch.
        """
        self._resume_states = (epoch_start_states, states)

    def run_epoch(self) -> None:
        """Iterates one epoch, from its first batch not trained yet."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        trained = self.trained_in_epoch
        epoch_start_states, states = self._resume_states or (None, None)
        self._resume_states = None
        if epoch_start_states is not None:
            restore_random_states(epoch_start_states)
        self.epoch_start_states = capture_random_states()
        batches = iter(self.dataloader)
        for _ in range(trained):
            next(batches)
        if states is not None:
            restore_random_states(states)
        for index, data_batch in enumerate(batches, start=trained):
            self.run_iter(index, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
