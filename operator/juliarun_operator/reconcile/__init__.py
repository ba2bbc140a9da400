"""The operator: kopf handlers, batch status sync, status and conditions, naming, credentials.

Uses `juliarun_operator.juliarun` for the protocol; never imports the emulator.
"""
