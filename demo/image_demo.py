"""Classifies an image with a model of the zoo or a config.

Example:
    python demo/image_demo.py demo/grace_hopper.jpg svt-s_8xb128_in1k \\
        --checkpoint alt_gvt_small.pth --topk 5 --out-file grace_hopper_pred.jpg
"""
import argparse
import sys
from typing import Optional, Sequence

from mmtwins.apis import inference_model
from mmtwins.apis.inference import draw_classes, top_classes

# A sibling module: Python puts the folder of a script it runs first on sys.path.
from demo_utils import add_model_arguments, build_model, image_file, positive_int


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses the model arguments (:func:`add_model_arguments`), ``--topk`` and
    ``--out-file``.

    Args:
        argv: the arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.

    Example:
        >>> parse_args(['demo/grace_hopper.jpg', 'svt-s_8xb128_in1k']).topk
        5
    """
    parser = argparse.ArgumentParser(description='Classify an image')
    add_model_arguments(parser)
    parser.add_argument('--topk', type=positive_int, default=5,
                        help='how many classes to show')
    parser.add_argument('--out-file', type=image_file,
                        help='save the image with the predictions drawn on it '
                        '(an image file: .png, .jpg, ...)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Classifies the image; prints the top classes, best first, and draws them
    with ``--out-file``.

    Exits with a one-line error when the model or the image cannot be used.

    Args:
        argv: as for :func:`parse_args`.

    Example:
        >>> main(['demo/grace_hopper.jpg', 'svt-s_8xb128_in1k', '--topk', '3'])
    """
    args = parse_args(argv)
    model = build_model(args, 'classification')
    try:
        result = inference_model(model, args.image)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f'error: {error}')
    predictions = top_classes(result['pred_scores'], model._dataset_meta.get('classes'),
                              args.topk)
    for rank, (name, score) in enumerate(predictions, 1):
        print(f'{rank}. {name}: {score:.4f}')
    if args.out_file:
        draw_classes(args.image, predictions, args.out_file)
        print(f'saved {args.out_file}')


if __name__ == '__main__':
    main()
