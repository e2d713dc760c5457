"""The registries of mmtwins, children of MMEngine's root registries.

Every component of mmtwins is registered in the ``mmtwins`` scope, so its names never
clash with the ``PCPVT``, ``SVT`` and ``DaViT`` that mmpretrain and mmseg register.

* An mmtwins config reaches components of the other libraries with a scope prefix,
  for example ``dict(type='mmpretrain.ImageClassifier')``; ``_scope_='mmseg'`` in a dict
  builds that dict and everything nested in it in the mmseg scope.
* A config of mmpretrain, mmseg or mmdet reaches ours the same way, for example
  ``backbone=dict(type='mmtwins.TwinsSVT')``, with
  ``custom_imports=dict(imports=['mmtwins.models'])``. The ``locations`` below import
  the modules on first use, so the import is a formality that keeps configs explicit.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import \
    RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import \
    WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

__all__ = [
    'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS',
    'OPTIMIZERS', 'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS',
    'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS',
    'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS', 'METRICS',
    'EVALUATOR', 'VISUALIZERS', 'VISBACKENDS', 'INFERENCERS', 'FUNCTIONS'
]

SCOPE = 'mmtwins'

RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope=SCOPE, locations=['mmtwins.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS, scope=SCOPE)
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope=SCOPE, locations=['mmtwins.engine'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope=SCOPE, locations=['mmtwins.engine'])
LOG_PROCESSORS = Registry(
    'log processor', parent=MMENGINE_LOG_PROCESSORS, scope=SCOPE)

OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope=SCOPE)
OPTIM_WRAPPERS = Registry(
    'optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope=SCOPE)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope=SCOPE)
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope=SCOPE)

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE)
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, scope=SCOPE)
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE, locations=['mmtwins.datasets'])

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope=SCOPE, locations=['mmtwins.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope=SCOPE)
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, scope=SCOPE)
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, scope=SCOPE)

METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE)
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope=SCOPE)
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE)
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope=SCOPE)
INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, scope=SCOPE)
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope=SCOPE)
