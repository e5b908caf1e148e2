"""`warmfleet k8s generate`: the per-pool Kubernetes manifests under k8s/base, generated from
k8s/pools.yaml and the contract (keys, probes), so nothing in them is copied by hand."""
