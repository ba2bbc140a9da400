"""The world outside the runtime: the Kubernetes API (behind the `KubeAPI` protocol), kopf's
watch, the Lease and the metrics server. Uses the decision's vocabulary only."""
