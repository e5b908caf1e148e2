"""The GC sidecar: recycles its executor pod when it has been warm too long, served too
many jobs, grown too big, or ran a job that hit a limit; safely (drain first, a fleet-wide
cap and floor) and in Kubernetes through the Eviction API.

policy.py decides, lease.py bounds how many pods recycle at once, recycler.py runs one
recycle, k8s.py evicts, local.py recycles `warmfleet up` pods, http.py serves probes and
metrics, main.py is the sidecar process (`python -m gc_sidecar`, `warmfleet gc`).
"""
