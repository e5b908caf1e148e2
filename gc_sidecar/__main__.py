"""``python -m gc_sidecar``: the GC sidecar of one executor pod (see gc_sidecar.main)."""

import sys

try:
    from gc_sidecar.main import main
except ModuleNotFoundError as exc:  # a client-only install (pip install warmfleet): say which extra
    from warmfleet.plumbing.extras import exit_naming_the_extra

    exit_naming_the_extra(exc, "python -m gc_sidecar")

sys.exit(main())
