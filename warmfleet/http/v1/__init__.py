"""warmfleet's own HTTP API, /v1: jobs and sessions with the full Result (every status,
budgets used, egress, output files). models.py is its typed surface (what the OpenAPI
document at /openapi.json describes); jobs.py and sessions.py are the routers."""
