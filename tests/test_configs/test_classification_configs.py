"""The classification configs: published parameter counts and the official recipes."""
import re

import pytest

from mmtwins.apis import list_models
from tests.test_configs.helpers import check_no_decay_keys_name_parameters, load_zoo_model


@pytest.fixture(params=list_models(task='classification'))
def zoo_model(request):
    return load_zoo_model(request.param)


def test_nine_released_classifiers():
    assert len(list_models(task='classification')) == 9


def test_parameter_count_is_the_published_one(zoo_model):
    info, _, model = zoo_model
    assert sum(p.numel() for p in model.parameters()) == info.metadata['Parameters']


def test_every_no_decay_key_names_parameters(zoo_model):
    _, config, model = zoo_model
    assert config.optim_wrapper.paramwise_cfg.custom_keys
    check_no_decay_keys_name_parameters(config, model)


def test_learning_rate_follows_the_linear_scaling_rule(zoo_model):
    info, config, _ = zoo_model
    gpus, batch = map(int, re.search(r'_(\d+)xb(\d+)_', info.name).groups())
    assert config.train_dataloader.batch_size == batch
    assert config.auto_scale_lr.base_batch_size == gpus * batch == 1024
    assert config.optim_wrapper.optimizer.lr == pytest.approx(5e-4 * 1024 / 512)
    warmup = config.param_scheduler[0]
    assert warmup.start_factor * config.optim_wrapper.optimizer.lr == pytest.approx(1e-6)


def test_evaluation_resize_is_official(zoo_model):
    info, config, _ = zoo_model
    resize, crop = config.test_dataloader.dataset.pipeline[1:3]
    expected = 236 if info.name.startswith('davit') else 256  # DaViT crops 0.95 of the short side
    assert (resize.scale, resize.interpolation, crop.crop_size) == (expected, 'bicubic', 224)


def test_family_recipe_differences(zoo_model):
    info, config, _ = zoo_model
    warmup_epochs = config.param_scheduler[0].end
    assert warmup_epochs == (20 if info.name.startswith('davit') else 5)
    assert config.optim_wrapper.clip_grad.max_norm == 5.0
    assert config.model.head.loss.label_smooth_val == 0.1
    assert config.train_cfg.max_epochs == 300
