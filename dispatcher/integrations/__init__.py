"""Adapters to the frameworks agent builders already use, each an optional extra:
``mcp_server`` (``pip install warmfleet[mcp]``), ``langchain_tool`` (``[langchain]``),
``celery_task`` (``[celery]``). Importing this package imports none of them."""
