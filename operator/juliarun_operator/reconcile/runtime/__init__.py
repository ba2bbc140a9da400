"""Carrying the decision out: the controller (the queue's one owner), the executor, the JuliaRun
connections (one compartment each: breaker, snapshot loop, call cap), the registry of
objects, and the credentials behind the connections. Uses the decision and the adapters,
never the process wiring (main.py)."""
