"""python -m meloformer.train …: parse the seed's flags and train (see cli.py, loop.py).

Under torchrun every rank runs this; the process group comes from torchrun's environment.
"""

from __future__ import annotations

from meloformer.train.cli import build_parser, model_config, train_config
from meloformer.train.dist import shutdown
from meloformer.train.loop import train


def main(argv: list[str] | None = None) -> dict:
    """Run training from command-line arguments; returns the metrics summary."""
    args = build_parser().parse_args(argv)
    try:
        return train(train_config(args), model_config(args.model_size, args.model),
                     args.data_dir, args.output_dir, device=args.device, resume=args.resume)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
