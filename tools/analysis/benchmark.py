"""Inference throughput, training step time and peak training memory of mmtwins models.

Measured as the Swin and Twins papers measure throughput: a fixed batch of random
images, warm-up iterations, then timed iterations, in images per second. When timm is
installed and the model is an ImageNet classifier of ours, timm's model of the same
architecture (its ``Twins`` or ``DaVit`` class, built from the backbone's arch) runs in
the same process, interleaved round by round with ours, so that both see the same
machine load; the ratio mmtwins / timm is printed for each measurement. With
``--compile`` both are compiled (``mmtwins.utils.compile_model``: the same inductor
options for both), and mmtwins' eager model is timed beside them.

Numbers per model and measurement: the best round (the least disturbed by other work on
the machine), the median round, and the median of the per-round ratios. Peak memory of
a training step: on CUDA ``torch.cuda.max_memory_allocated`` above the step's start; on
CPU the peak of the tensor bytes that PyTorch's CPU allocator holds above the step's
start, read from the profiler's allocation events (``profile_memory=True``). Both count
activations, gradients and temporaries, not the parameters and optimizer states that
exist before the step; memory that oneDNN or MKL allocate internally is not seen on CPU.

Example:
    python tools/analysis/benchmark.py svt-s_8xb128_in1k --threads 2
    python tools/analysis/benchmark.py pcpvt-s_8xb128_in1k davit-t_4xb256_in1k \\
        --threads 2 --train --memory
    python tools/analysis/benchmark.py configs/twins/svt-b_8xb128_in1k.py --compile
    python tools/analysis/benchmark.py svt-s_8xb128_in1k --train --memory --with-cp
    python tools/analysis/benchmark.py svt-s_8xb128_in1k --threads 1 --timer cpu
"""
import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtwins.apis import get_model
from mmtwins.models.backbones import DaViT, TwinsPCPVT, TwinsSVT
from mmtwins.models.layers import WindowAttention
from mmtwins.utils import compile_model
from mmtwins.utils.complexity import data_sample, task_of_model, tensor_mode_forward


@dataclass
class Candidate:
    """One implementation under test and the rounds measured of it."""
    label: str
    module: nn.Module
    optimizer: Optional[torch.optim.Optimizer] = None
    rounds: Dict[str, List[float]] = field(default_factory=dict)
    first_call_s: Dict[str, float] = field(default_factory=dict)
    peak_mib: Optional[float] = None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parses and checks the command line.

    Args:
        argv: The arguments without the program name; ``sys.argv[1:]`` when None.

    Returns:
        The parsed arguments, ``input_size`` as ``(H, W)`` (one side given: a square).

    Example:
        >>> parse_args(['svt-s_8xb128_in1k', '--input-size', '384']).input_size
        (384, 384)
    """
    parser = argparse.ArgumentParser(
        description='Inference throughput and training step time of mmtwins models, '
        'interleaved with timm\'s model of the same architecture when timm is installed')
    parser.add_argument('models', nargs='+',
                        help='zoo names or aliases (mmtwins.list_models()) or config files')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--input-size', type=int, nargs='+', default=[224],
                        help='side, or height and width, of the random images')
    parser.add_argument('--dtype', choices=('fp32', 'bf16'), default='fp32',
                        help='bf16 runs forward and loss under torch.autocast')
    parser.add_argument('--channels-last', action='store_true',
                        help='models and input in torch.channels_last memory format')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile each model with mmtwins.utils.compile_model '
                        '(the first call, timed apart, compiles); mmtwins\' eager model '
                        'is timed too, as "eager"')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads')
    parser.add_argument('--timer', choices=('wall', 'cpu'), default='wall',
                        help='cpu: this process\'s CPU time instead of the wall clock, '
                        'so that other work on a shared machine does not count (with 1 '
                        'thread; with more, threads waiting for each other count)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations (at least 1)')
    parser.add_argument('--iters', type=int, default=3, help='timed iterations a round')
    parser.add_argument('--rounds', type=int, default=5,
                        help='rounds, each timing every implementation in turn')
    parser.add_argument('--train', action='store_true',
                        help='also time training steps (forward, cross-entropy, '
                        'backward, AdamW step)')
    parser.add_argument('--no-inference', action='store_true',
                        help='skip the inference measurement')
    parser.add_argument('--memory', action='store_true',
                        help='peak memory of one training step')
    parser.add_argument('--with-cp', action='store_true',
                        help='gradient checkpointing in the mmtwins backbone (timm\'s '
                        'Twins has none; timm runs without)')
    parser.add_argument('--no-timm', action='store_true', help='mmtwins alone')
    args = parser.parse_args(argv)
    if min(args.warmup, args.iters, args.rounds, args.batch_size) < 1:
        parser.error('--warmup, --iters, --rounds and --batch-size must be at least 1')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    if len(args.input_size) > 2 or min(args.input_size) < 1:
        parser.error(f'--input-size takes one or two positive numbers, got {args.input_size}')
    if args.no_inference and not (args.train or args.memory):
        parser.error('--no-inference leaves nothing to measure: add --train or --memory')
    if args.timer == 'cpu' and args.device != 'cpu':
        parser.error('--timer cpu times CPU work; use the wall clock on a GPU')
    if args.memory and args.compile:
        parser.error('--memory measures eager steps; run it without --compile')
    args.input_size = tuple((args.input_size * 2)[:2])
    return args


def timm_twin(model: nn.Module, input_size: Tuple[int, int]) -> Optional[nn.Module]:
    """timm's model of the same architecture as an mmtwins ImageNet classifier.

    Args:
        model: A model built by :func:`mmtwins.apis.get_model`.
        input_size: ``(H, W)``; timm's Twins checks its patch grid against it.

    Returns:
        A timm ``Twins`` or ``DaVit`` with random weights, the same arch, window,
        classes and drop path rate; None when timm is missing or ``model`` is no
        classifier with an mmtwins backbone.

    Raises:
        ValueError: for a Twins model at a size timm's Twins cannot take (sides that are
            no multiple of its last stage's stride).

    Example:
        >>> timm_twin(get_model('twins_svt_small'), (224, 224)).__class__.__name__
        'Twins'
    """
    backbone, head = getattr(model, 'backbone', None), getattr(model, 'head', None)
    if not isinstance(backbone, (TwinsPCPVT, TwinsSVT, DaViT)) or \
            not hasattr(head, 'num_classes'):
        return None
    try:
        from timm.models.davit import DaVit
        from timm.models.twins import Twins
    except ImportError:
        return None
    arch = backbone.arch_settings
    window = next((module.window_size for module in backbone.modules()
                   if isinstance(module, WindowAttention)), None)
    common = dict(in_chans=backbone.in_channels, num_classes=head.num_classes,
                  drop_path_rate=model._config.model.backbone.get('drop_path_rate', 0.),
                  embed_dims=arch['embed_dims'], depths=arch['depths'],
                  num_heads=arch['num_heads'])
    if isinstance(backbone, DaViT):
        mlp_ratio = backbone.stages[0].blocks[0].spatial.mlp.fc1.out_features / \
            arch['embed_dims'][0]
        return DaVit(window_size=window, mlp_ratio=mlp_ratio, **common)
    stride = 2**(len(arch['depths']) + 1)
    if any(side % stride for side in input_size):
        raise ValueError(f'--input-size {input_size[0]} {input_size[1]}: timm\'s Twins takes '
                         f'only multiples of its last stride, {stride}; measure mmtwins '
                         f'alone with --no-timm')
    return Twins(img_size=input_size, patch_size=4, mlp_ratios=arch['mlp_ratios'],
                 sr_ratios=arch['sr_ratios'],
                 wss=[window] * len(arch['depths']) if window else None, **common)


def timm_name(model: nn.Module) -> Optional[str]:
    """The timm registry name among the zoo aliases of ``model``, if any."""
    import timm
    info = getattr(model, '_metainfo', None)
    return next((alias for alias in (info.aliases if info else ())
                 if timm.is_model(alias)), None)


def loss_of(output: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """Cross-entropy of logits (class dim 1) against fixed random targets.

    Args:
        output: A model's output: logits, or a tuple of them (a backbone's maps), which
            sums one such loss per tensor.

    Returns:
        The loss, a scalar.

    Example:
        >>> loss_of(torch.zeros(2, 10))
        tensor(2.3026)
    """
    if isinstance(output, (tuple, list)):
        return sum(loss_of(item) for item in output)
    generator = torch.Generator().manual_seed(0)
    shape = (output.shape[0], *output.shape[2:])
    targets = torch.randint(output.shape[1], shape, generator=generator)
    return F.cross_entropy(output.float(), targets.to(output.device))


def synchronize(device: torch.device) -> None:
    """Waits for the work queued on ``device``: CUDA runs asynchronously to the clock.

    Args:
        device: The device measured; nothing to wait for on CPU.
    """
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def inference_step(candidate: Candidate, x: Tensor,
                   autocast: Callable[[], ContextManager]) -> None:
    """One forward pass of ``candidate`` on ``x``, without autograd.

    Args:
        candidate: The implementation to run.
        x: The batch of images.
        autocast: Makes the context to run in (bf16 autocast or none).
    """
    with torch.inference_mode(), autocast():
        candidate.module(x)


def train_step(candidate: Candidate, x: Tensor, autocast: Callable[[], ContextManager]) -> None:
    """One training step of ``candidate`` on ``x``: forward, loss, backward, optimizer step.

    Args:
        candidate: The implementation to train; its ``optimizer`` must be set.
        x: The batch of images.
        autocast: Makes the context of the forward and loss (bf16 autocast or none).
    """
    with autocast():
        loss = loss_of(candidate.module(x))
    loss.backward()
    candidate.optimizer.step()
    candidate.optimizer.zero_grad(set_to_none=True)


def time_rounds(candidates: List[Candidate], step: Callable[[Candidate], None],
                key: str, args: argparse.Namespace, device: torch.device) -> None:
    """Warms every candidate up, then times them in turn, ``args.rounds`` times.

    Each round's images per second go to ``candidate.rounds[key]``, the time of the
    first (with ``--compile``, compiling) call to ``candidate.first_call_s[key]``.
    """
    for candidate in candidates:
        start = time.perf_counter()
        step(candidate)
        synchronize(device)
        candidate.first_call_s[key] = time.perf_counter() - start
        for _ in range(args.warmup - 1):
            step(candidate)
    clock = time.process_time if args.timer == 'cpu' else time.perf_counter
    for _ in range(args.rounds):
        for candidate in candidates:
            synchronize(device)
            start = clock()
            for _ in range(args.iters):
                step(candidate)
            synchronize(device)
            elapsed = clock() - start
            candidate.rounds.setdefault(key, []).append(
                args.batch_size * args.iters / elapsed)


def peak_step_memory(step: Callable[[], None], device: torch.device) -> float:
    """MiB allocated at the peak of ``step()`` above what was allocated before it.

    On CPU the profiler's allocation events carry the allocator's running total of
    bytes allocated (and not yet freed) since profiling started.
    """
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    peak, pending = 0, list(prof.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        if event.tag == _EventType.Allocation:
            peak = max(peak, event.extra_fields.total_allocated)
        pending.extend(event.children)
    return peak / 2**20


def build_candidates(name: str, args: argparse.Namespace,
                     device: torch.device) -> Tuple[List[Candidate], str]:
    """mmtwins' model and, unless excluded or missing, timm's; and a description."""
    overrides = dict(backbone=dict(with_cp=True)) if args.with_cp else {}
    model = get_model(name, device=device, **overrides)
    sample = data_sample(task_of_model(model), args.input_size)
    # Called with the images alone, as timm's model is; a detector's RPN reads the image
    # size from the data samples.
    model.forward = tensor_mode_forward(
        model, None if sample is None else [sample] * args.batch_size)
    candidates = [Candidate('mmtwins', model)]
    twin = None if args.no_timm else timm_twin(model, args.input_size)
    if twin is not None:
        candidates.append(Candidate('timm', twin.to(device)))
        description = f'timm: {timm_name(model) or type(twin).__name__}'
    else:
        description = 'no timm model compared'
    for candidate in candidates:
        candidate.module.eval()
        if args.channels_last:
            candidate.module.to(memory_format=torch.channels_last)
        params = sum(param.numel() for param in candidate.module.parameters())
        description += f', {candidate.label} {params / 1e6:.2f} M params'
    if args.compile:
        # Models of one class (every classifier is an ImageClassifier) share one forward
        # code object, which dynamo would recompile for each model until its recompile
        # limit (8) and then run eagerly.
        torch._dynamo.reset()
        eager = Candidate('eager', candidates[0].module)
        for candidate in candidates:
            candidate.module = compile_model(candidate.module)
        candidates.append(eager)
    return candidates, description


def benchmark(name: str, args: argparse.Namespace) -> List[Tuple[str, ...]]:
    """Measures one model; prints its lines and returns its summary rows."""
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    x = torch.randn(args.batch_size, 3, *args.input_size, device=device).contiguous(
        memory_format=memory_format)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) \
            if args.dtype == 'bf16' else contextlib.nullcontext()

    candidates, description = build_candidates(name, args, device)
    print(f'{name} ({description})', flush=True)
    measurements = []
    if not args.no_inference:
        time_rounds(candidates, lambda c: inference_step(c, x, autocast), 'inference',
                    args, device)
        measurements.append('inference')
    if args.train or args.memory:
        for candidate in candidates:
            candidate.module.train()
            candidate.optimizer = torch.optim.AdamW(candidate.module.parameters(), lr=1e-5)
    if args.train:
        time_rounds(candidates, lambda c: train_step(c, x, autocast), 'train', args,
                    device)
        measurements.append('train')
    if args.memory:
        for candidate in candidates:
            train_step(candidate, x, autocast)  # the optimizer states exist before
            candidate.peak_mib = peak_step_memory(
                lambda: train_step(candidate, x, autocast), device)
    rows = [summarise(key, candidates) for key in measurements]
    for candidate in candidates:
        if args.compile and candidate.label != 'eager':
            for key, seconds in candidate.first_call_s.items():
                print(f'  compile     {candidate.label:8s} {key} first call {seconds:.1f} s')
        if candidate.peak_mib is not None:
            print(f'  train peak  {candidate.label:8s} {candidate.peak_mib:9.1f} MiB '
                  f'above the step\'s start')
    if args.memory and len(candidates) == 2:
        print(f'  train peak  ratio    {candidates[0].peak_mib / candidates[1].peak_mib:.2f}x')
    return [(name, *row) for row in rows]


def summarise(key: str, candidates: List[Candidate]) -> Tuple[str, ...]:
    """Prints one measurement's lines; returns (measurement, mmtwins, timm, ratio).

    The ratios are mmtwins' over each other candidate's (timm's; with ``--compile``
    also mmtwins' eager model's).
    """
    unit = 'img/s' if key == 'inference' else 'img/s (train steps)'
    best = {}
    for candidate in candidates:
        rounds = candidate.rounds[key]
        best[candidate.label] = max(rounds)
        print(f'  {key:11s} {candidate.label:8s} {max(rounds):8.2f} {unit} '
              f'(median {statistics.median(rounds):.2f}; {len(rounds)} rounds)', flush=True)
    ours = candidates[0]
    for other in candidates[1:]:
        paired = statistics.median(
            a / b for a, b in zip(ours.rounds[key], other.rounds[key]))
        print(f'  {key:11s} ratio    {best[ours.label] / best[other.label]:.2f}x '
              f'mmtwins/{other.label} (median of the rounds\' ratios {paired:.2f}x)',
              flush=True)
    if 'timm' not in best:
        return key, f'{best[ours.label]:.2f}', '', ''
    return (key, f'{best[ours.label]:.2f}', f'{best["timm"]:.2f}',
            f'{best[ours.label] / best["timm"]:.2f}x')


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    mode = 'torch.compile' if args.compile else 'eager'
    layout = ', channels_last' if args.channels_last else ''
    print(f'{args.device}, {torch.get_num_threads()} threads, {args.timer} clock, '
          f'batch {args.batch_size}, '
          f'{"x".join(map(str, args.input_size))}, {args.dtype}{layout}, '
          f'{mode}, torch {torch.__version__}; {args.warmup} warm-up and {args.rounds} '
          f'rounds of {args.iters} iterations', flush=True)
    rows = []
    for name in args.models:
        try:
            rows.extend(benchmark(name, args))
        except (FileNotFoundError, ValueError) as error:
            sys.exit(f'error: {error}')
    if not rows:
        return
    print('\n| model | measurement | mmtwins img/s | timm img/s | mmtwins / timm |')
    print('|---|---|---|---|---|')
    for row in rows:
        print('| ' + ' | '.join(row) + ' |')


if __name__ == '__main__':
    main()
