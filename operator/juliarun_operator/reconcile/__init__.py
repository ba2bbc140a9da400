"""The operator, a level-triggered reconciler. Where things are:

- the decision, pure: `decide.py` (entry; live objects), `deleting.py`, `batch.py` (batch
  jobs), `rules.py` (what they share), `status.py` (conditions), `model.py` (its types),
  `naming.py`, `mapping.py` (spec to JuliaRun parameters);
- carrying it out: `controller.py` (work queue, facts), `execute.py` (actions), `poller.py`
  (one snapshot per connection), `registry.py`, `routing.py`, `connections.py` (breaker),
  `secrets.py`, `kube.py`, `leader.py` (Lease), `metrics.py`;
- the process: `main.py` (flags; kopf only watches), `kopfstorage.py`.

Uses `juliarun_operator.juliarun` for the protocol; never imports the emulator.
"""
