"""SandboxFusion's sandbox API (`POST /run_code`, `POST /run_jupyter`), served on the
fleet: the `sandbox-fusion` client package, pointed at the service, works unmodified.

models.py is the wire format (SandboxFusion's own field names and status strings);
translate.py maps a request onto a warmfleet job or session calls and a Result back;
routes.py is the router the app includes.
"""
