"""``python -m gc_sidecar``: the GC sidecar of one executor pod (see gc_sidecar.main)."""

import sys

try:
    from gc_sidecar.main import main
except ModuleNotFoundError as exc:  # a client-only install (pip install warmfleet): say which extra
    from warmfleet.plumbing.extras import fleet_extra_missing

    if (message := fleet_extra_missing(exc, "python -m gc_sidecar")) is None:
        raise
    print(message, file=sys.stderr)
    sys.exit(2)

sys.exit(main())
