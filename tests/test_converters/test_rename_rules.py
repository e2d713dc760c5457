import pytest
import torch

from mmtwins.converters.rename import indices_of, rename_keys, stage_norm_rule


def test_rules_apply_in_order_and_keep_tensors():
    tensor = torch.zeros(1)
    rules = [(r'^stages\.', 'blocks.'), (r'^blocks\.(\d+)\.', r'blocks.\1.x.'),
             (r'^a\.(\d+)\.', lambda m: f'a.{int(m.group(1)) + 1}.')]
    renamed = rename_keys({'stages.2.w': tensor, 'a.3.b': tensor, 'other': tensor},
                          rules)
    assert renamed == {'blocks.2.x.w': tensor, 'a.4.b': tensor, 'other': tensor}
    assert all(value is tensor for value in renamed.values())


def test_two_keys_onto_one_name_is_an_error():
    with pytest.raises(ValueError, match="'blocks.0.w'"):
        rename_keys({'stages.0.w': torch.zeros(1), 'layers.0.w': torch.zeros(1)},
                    [(r'^(stages|layers)\.', 'blocks.')])


def test_indices_of():
    keys = ['norm3.weight', 'norm3.bias', 'norm1.bias', 'head.norm.bias']
    assert indices_of(keys, r'^norm(\d+)\.') == {1, 3}


@pytest.mark.parametrize('norms, expected', [
    ([3], 'head.norm.'),
    ([0, 1, 2, 3], r'norm\1.'),
    ([2], r'norm\1.'),
])
def test_stage_norm_rule_tells_classifier_from_dense(norms, expected):
    keys = [f'stages.{i}.blocks.0.w' for i in range(4)]
    keys += [f'norm{i}.weight' for i in norms]
    rule = stage_norm_rule(keys, r'^norm(\d+)\.', r'^stages\.(\d+)\.',
                           'head.norm.', r'norm\1.')
    assert rule == (r'^norm(\d+)\.', expected)
