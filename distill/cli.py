"""``dllm train`` (and later ``dllm distill``) subcommand wiring for :mod:`dllm.cli`."""
from __future__ import annotations

import argparse


def add_train_parser(parser: argparse.ArgumentParser) -> None:
    from .reference import add_train_arguments, run_train

    parser.description = ("Train the project's reference dLLM (LLaDA layout) with the masked-diffusion objective on "
                          "the train split of the 12 offline ParallelBench tasks. Seeded; re-run to resume.")
    add_train_arguments(parser)
    parser.set_defaults(func=run_train)
