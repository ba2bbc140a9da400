"""A JuliaRun-compatible server: emulated jobs behind the real HTTP API, with faults on demand.

Use `running_emulator(EmulatorConfig(...))` in tests, `create_app` to embed it, and
`configure_parser` to add the `emulator` subcommand to a CLI.
"""

from .run import configure_parser, running_emulator
from .server import EmulatorConfig, create_app

__all__ = ["EmulatorConfig", "configure_parser", "create_app", "running_emulator"]
