"""The egress proxy a pool's jobs reach the network through: deny by default, allow the
pool's named destinations, and say clearly what was denied.

policy.py decides (pure), resolver.py resolves names (a hosts file first, for tests
and pinned names), usage.py counts each job's connections and bytes, protocols.py
reads HTTP proxy and SOCKS5 requests, server.py serves jobs and the supervisors'
control requests, `python -m egress` runs it (local: started by `warmfleet up`;
Kubernetes: the pool's egress gateway Deployment).
"""
