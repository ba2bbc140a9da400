"""What tests of every tier share: waiting on a condition, a recording Kubernetes double for
the runtime's unit tests, and builders of the decision's inputs. Importable as `support`
(pyproject.toml puts tests/ on the path)."""
