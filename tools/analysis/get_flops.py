"""Parameters and FLOPs (multiply-adds) of classifiers, segmentors and detectors.

Usage:
    python tools/analysis/get_flops.py MODEL_OR_CONFIG [MODEL_OR_CONFIG ...]
        [--shape H [W]] [--per-module [DEPTH]]

Each argument is a zoo name or alias (``svt-s_8xb128_in1k``), a config file, or a
wildcard pattern over zoo names (``'*in1k'``). The whole model's eval forward on one
random image of ``--shape`` is counted (default: 224 x 224 for classification, 512 x 512
for segmentation, 1280 x 800 for detection), attention included; see
``mmtwins/utils/complexity.py`` for what counts and docs/benchmark.md for the zoo.

Example:
    python tools/analysis/get_flops.py '*in1k'
    python tools/analysis/get_flops.py configs/twins/upernet_svt-s_8xb2-160k_ade20k-512x512.py
    python tools/analysis/get_flops.py davit-t_4xb256_in1k --shape 384 --per-module 2
"""
import argparse
import sys
from typing import List, Optional, Tuple

from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.logging import MMLogger

from mmtwins.apis import get_model, list_models
from mmtwins.utils.complexity import (Complexity, PublishedFlops, count_complexity,
                                      published_flops)

WILDCARDS = '*?['


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.

    Example:
        >>> parse_args(['svt-s_8xb128_in1k', '--shape', '384']).shape
        [384]
    """
    parser = argparse.ArgumentParser(
        description='Count the parameters and FLOPs (multiply-adds) of models.')
    parser.add_argument(
        'models', nargs='+', metavar='MODEL_OR_CONFIG',
        help='a zoo name or alias, a config file, or a wildcard pattern over zoo names')
    parser.add_argument(
        '--shape', type=int, nargs='+', metavar=('H', 'W'),
        help='input height and width (one number: square); default: the task\'s size')
    parser.add_argument(
        '--per-module', type=int, nargs='?', const=3, metavar='DEPTH',
        help='also print the parameters and FLOPs of every module down to DEPTH '
        '(default 3)')
    args = parser.parse_args(argv)
    if args.shape is not None and (len(args.shape) not in (1, 2) or min(args.shape) < 1):
        parser.error(f'--shape takes H and W, or one side, positive: got {args.shape}')
    return args


def expand_models(arguments: List[str]) -> List[str]:
    """Zoo names for the wildcard patterns among ``arguments``; others stay as given.

    Raises:
        ValueError: a pattern matches no zoo name.

    Example:
        >>> expand_models(['davit-t*', 'my_config.py'])
        ['davit-t_4xb256_in1k', 'my_config.py']
    """
    models = []
    for argument in arguments:
        if not any(char in argument for char in WILDCARDS):
            models.append(argument)
            continue
        matches = list_models(argument)
        if not matches:
            raise ValueError(f'{argument!r} matches no zoo model; '
                             f'mmtwins.list_models() lists all names')
        models.extend(matches)
    return models


def difference(flops: int, published: int) -> str:
    """``flops`` relative to ``published``, in per cent with a sign."""
    return f'{100 * (flops / published - 1):+.2f}%'


def table_row(name: str, result: Complexity, published: Optional[PublishedFlops]) -> str:
    """One markdown table row: model, task, input, params, FLOPs, published, difference."""
    height, width = result.input_shape
    cells = [name, result.task, f'{height} x {width}', f'{result.params / 1e6:.2f}',
             f'{result.params:,}', f'{result.flops / 1e9:.3f}']
    if published is None:
        cells += ['', '']
    else:
        cells += [f'{published.flops / 1e9:.2f}', difference(result.flops, published.flops)]
    return '| ' + ' | '.join(cells) + ' |'


def attention_note(name: str, result: Complexity, published: Optional[PublishedFlops]) -> str:
    """For a published figure without the attention products: our count without them."""
    if published is None or published.counts_attention:
        return ''
    attention = result.sdpa_flops
    without = result.flops - attention
    return (f'{name}: {attention / 1e9:.3f} G of attention products; without them '
            f'{without / 1e9:.3f} G, {difference(without, published.flops)}')


def operator_line(name: str, result: Complexity) -> str:
    """The FLOPs of each counted operator, largest first, in G."""
    counts = result.analyzer.by_operator().most_common()
    return f'{name}: ' + ', '.join(f'{op} {flops / 1e9:.3f}' for op, flops in counts)


def count_all(
        models: List[str], shape: Optional[Tuple[int, int]]
) -> List[Tuple[str, Complexity, Optional[PublishedFlops]]]:
    """Builds and counts each model; adds the zoo's published FLOPs where comparable."""
    results = []
    for name in models:
        model = get_model(name)
        result = count_complexity(model, shape)
        results.append((name, result, published_flops(model, result)))
    return results


def report(results: List[Tuple[str, Complexity, Optional[PublishedFlops]]],
           per_module: Optional[int]) -> str:
    """The table, the per-operator FLOPs, the uncounted operators, and per-module tables."""
    lines = ['| model | task | input (H x W) | params (M) | params | FLOPs (G) '
             '| published FLOPs (G) | difference |',
             '|---|---|---|---|---|---|---|---|']
    lines += [table_row(*result) for result in results]
    notes = [note for note in (attention_note(*result) for result in results) if note]
    if notes:
        lines += ['', 'The published figures of these models leave out the attention '
                  'products (counters of module hooks, such as mmcv 1.x\'s, do not see '
                  'them):'] + notes
    lines += ['', 'FLOPs: multiply-adds (one fused multiply-add = 1 FLOP) of one '
              'eval-mode forward pass on one image. By operator (G):']
    lines += [operator_line(name, result) for name, result, _ in results]
    uncounted = sorted(set().union(*(result.uncounted_ops for _, result, _ in results)))
    lines += ['', 'Ran but counted as 0 FLOPs (the counter has no rule for them; elementwise '
              'ops by convention): ' + ', '.join(uncounted)]
    if per_module is not None:
        for name, result, _ in results:
            lines += ['', f'## {name}', complexity_stats_table(
                result.analyzer, max_depth=per_module, show_param_shapes=False)]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Counts and prints; returns the process exit status.

    Args:
        argv: As for :func:`parse_args`.

    Returns:
        0 on success, 1 with a message on stderr when a model cannot be built.

    Example:
        >>> main(['svt-s_8xb128_in1k'])
    """
    args = parse_args(argv)
    # The libraries log building notes (mmpretrain: one-hot labels for batch augments)
    # through the current logger; on stdout they would break up the table.
    MMLogger.get_instance('get_flops', log_level='WARNING')
    shape = None if args.shape is None else (args.shape[0], args.shape[-1])
    try:
        results = count_all(expand_models(args.models), shape)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    print(report(results, args.per_module))
    return 0


if __name__ == '__main__':
    sys.exit(main())
