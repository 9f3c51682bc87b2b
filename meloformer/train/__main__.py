"""python -m meloformer.train …: parse the seed's flags and train (see cli.py, loop.py).

Under torchrun every rank runs this; the process group comes from torchrun's environment.
Bad input (a missing --data_dir, a corrupt checkpoint) ends in one line on stderr, exit 1;
SIGINT/SIGTERM saves a checkpoint and exits 128 + the signal number.
"""

from __future__ import annotations

from meloformer.cli import run_cli
from meloformer.train.cli import build_parser, model_config, train_config
from meloformer.train.dist import shutdown
from meloformer.train.loop import TooManyBadSteps, train


def main(argv: list[str] | None = None) -> dict:
    """Run training from command-line arguments; returns the metrics summary."""
    args = build_parser().parse_args(argv)

    def run() -> dict:
        try:
            return train(train_config(args), model_config(args.model_size, args.model),
                         args.data_dir, args.output_dir, device=args.device, resume=args.resume)
        finally:
            shutdown()

    return run_cli(run, TooManyBadSteps, ValueError)


if __name__ == "__main__":
    main()
