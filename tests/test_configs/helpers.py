"""What the config tests of the three tasks share: zoo models built on the meta device, and
the checks every task's recipe must pass."""
import functools
import re
from typing import NamedTuple

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from mmtwins.apis import ModelZoo
from mmtwins.apis.model_zoo import ModelInfo


class ZooModel(NamedTuple):
    info: ModelInfo
    config: Config
    model: torch.nn.Module


@functools.lru_cache(maxsize=None)
def load_zoo_model(name: str) -> ZooModel:
    """The zoo entry, its config and its model, built on the meta device (no memory)."""
    info = ModelZoo.get(name)
    config = Config.fromfile(info.config)
    with DefaultScope.overwrite_default_scope(config.default_scope), torch.device('meta'):
        return ZooModel(info, config, MODELS.build(config.model))


def check_no_decay_keys_name_parameters(config: Config, model: torch.nn.Module) -> None:
    """Every ``custom_keys`` entry of the optimiser matches parameters and turns decay off."""
    names = [name for name, _ in model.named_parameters()]
    custom_keys = (config.optim_wrapper.get('paramwise_cfg') or {}).get('custom_keys', {})
    for key, options in custom_keys.items():
        assert any(key in name for name in names), f'custom key {key!r} matches no parameter'
        assert options['decay_mult'] == 0.0


def check_backbone_starts_from_imagenet_weights(config: Config) -> None:
    """The backbone's ``init_cfg`` is the published weights of the classifier of its size."""
    backbone = config.model.backbone
    family, size = re.search(r'_(pcpvt|svt|davit)-([tsbl])_', config.filename).groups()
    classifier = {'davit': 'davit-{}_4xb256_in1k'}.get(family, family + '-{}_8xb128_in1k')
    if size == 'l':
        classifier = classifier.replace('8xb128', '16xb64')
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.checkpoint == ModelZoo.get(classifier.format(size)).weights
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    # the dense variants: a norm after every SVT stage, none in PCPVT, DaViT's on the outputs
    assert backbone.get('norm_after_stage', False) == (family == 'svt')
    assert backbone.get('norm_outputs', False) == (family == 'davit')
