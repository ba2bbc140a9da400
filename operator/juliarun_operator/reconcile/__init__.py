"""The operator, a level-triggered reconciler, in layers (tests/unit/test_layers.py keeps them):

- `decision/`: pure; from an object and JuliaRun's view of it, the plan;
- `runtime/`: carrying it out: the controller (the queue's one owner), the executor, the
  JuliaRun connections (a compartment each), the registry, the credentials;
- `adapters/`: Kubernetes, kopf's watch, the Lease, metrics;
- `main.py`: flags and environment to configuration, and the wiring.

Imports point down that list, never back. Uses `juliarun_operator.juliarun` for the
protocol and `juliarun_operator.api` for the resource's vocabulary; never the emulator.
"""
