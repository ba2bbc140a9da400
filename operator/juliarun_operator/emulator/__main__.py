"""`python -m juliarun_operator.emulator [flags]`: the emulator without the main CLI."""

import argparse
import sys

from .run import add_arguments, run_command


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m juliarun_operator.emulator",
        description="Serve a JuliaRun-compatible API with emulated jobs.",
    )
    add_arguments(parser)
    return run_command(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
