"""``python -m gc_sidecar``: the GC sidecar of one executor pod (see gc_sidecar.main)."""

import sys

from gc_sidecar.main import main

sys.exit(main())
