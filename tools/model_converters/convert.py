"""Converts a Twins or DaViT weight file of any supported format to mmtwins.

Usage:
    python tools/model_converters/convert.py SRC DST [--format auto|official|...]

SRC is read with ``torch.load(weights_only=True)`` (a file that needs arbitrary
objects unpickled is refused); DST receives ``{'state_dict': ..., 'meta':
{'source_format': ..., 'family': ...}}``, written to a temporary file next to it
and moved into place, so DST is never left half-written.
"""
import argparse
import sys
from typing import List, Optional

from mmtwins.converters import (FORMATS, convert_to_mmtwins,
                                load_pretrained_state_dict,
                                save_checkpoint_atomically)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments.

    Example:
        >>> parse_args(['in.pth', 'out.pth', '--format', 'mmseg']).format
        'mmseg'
    """
    parser = argparse.ArgumentParser(
        description='Convert a Twins (PCPVT, SVT) or DaViT checkpoint of the '
        'official code, timm, mmpretrain or mmseg to mmtwins keys.')
    parser.add_argument('src', help='the weight file to convert')
    parser.add_argument('dst', help='where to write the mmtwins checkpoint')
    parser.add_argument(
        '--format', default='auto', choices=('auto', ) + FORMATS,
        help='the format of SRC; auto detects it from the keys (default)')
    parser.add_argument(
        '--key', default=None,
        help='take the weights from this entry of SRC (for example '
        'state_dict_ema); by default the first of state_dict, model, '
        'state_dict_ema, or the top level')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the conversion; returns the process exit status.

    Args:
        argv: As for :func:`parse_args`.

    Returns:
        0 on success, 1 with a message on stderr when SRC cannot be converted.

    Example:
        >>> main(['twins_svt_small.pth', 'twins_svt_small_mmtwins.pth'])
    """
    args = parse_args(argv)
    try:
        source = load_pretrained_state_dict(args.src, key=args.key)
        state_dict, family, fmt = convert_to_mmtwins(
            source, fmt=args.format, source=args.src)
        save_checkpoint_atomically(
            {'state_dict': state_dict,
             'meta': {'source_format': fmt, 'family': family}}, args.dst)
    except (OSError, KeyError, ValueError) as error:
        # str() of a KeyError quotes its message.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f'error: {message}', file=sys.stderr)
        return 1
    print(f'{args.src}: {family}, {fmt} format, {len(source)} tensors')
    print(f'{args.dst}: mmtwins format, {len(state_dict)} tensors')
    return 0


if __name__ == '__main__':
    sys.exit(main())
