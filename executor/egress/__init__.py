"""A pod's side of its pool's egress: signing jobs for the proxy, collecting their usage, relays for sessions."""
