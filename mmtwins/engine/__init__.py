from .checkpoint_hook import CheckpointHook
from .loops import EpochBasedTrainLoop
from .random_states import capture_random_states, restore_random_states
from .runner import Runner

__all__ = [
    'CheckpointHook', 'EpochBasedTrainLoop', 'Runner', 'capture_random_states',
    'restore_random_states'
]
