"""juliarun-operator: JuliaRun jobs as Kubernetes resources."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # The version is pyproject.toml's, as installed; looked up on first use only, so that
    # importing the package stays cheap (`juliarun types` starts in well under 0.3 s).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("juliarun-operator")
        except PackageNotFoundError:  # a source tree put on sys.path without installing it
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
