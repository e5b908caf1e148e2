"""The job environment inside a slot: what jobs import, what the runner preloads for
them, and the figures they draw. Stdlib only (the lean runner and the job child import it).

- The runner appends the environment's site-packages to sys.path and imports the pool's
  preload modules once, before it forks any job child: a fork hands each job those
  modules already imported (a fresh copy-on-write image per job, so a job that
  monkey-patches one changes only its own copy).
- The child (executor/lean/child.py) leaves the job a sys.path of the stdlib and the
  environment only and forgets the executor's own modules: `import executor` fails.
- Figures a job shows (`plt.show()`) or leaves open come back as out/figure-N.png.
"""

from __future__ import annotations

import gc
import os
import sys

_PAGE = os.sysconf("SC_PAGE_SIZE")

# Set before any preload and in every job's environment: a non-interactive plot backend,
# and one BLAS/OpenMP thread (threads count against RLIMIT_NPROC and the CPU budget,
# and a fork keeps only the forking thread).
LIBRARY_ENV = {
    "MPLBACKEND": "Agg",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
MPL_CACHE = os.path.join("share", "warmfleet", "matplotlib")  # = warmfleet.local.jobenv.MPL_CACHE
FIGURE = "figure-{}.png"


# Warm-up steps: run once in the runner after the preload (lazy sub-imports and caches
# then live in the parent) and again in every spare while it waits for code, step by
# step, stopping as soon as code arrives (as the job uid, output discarded). Inside
# gVisor each page a child first touches is a trip through the Sentry: a spare that has
# touched what jobs typically touch leaves the job only its own work, and under load,
# when code is already waiting, no step runs and throughput is not spent on it.
# Steps must not write files: the job's workspace is already clean.
WARMUPS = {
    "numpy": "import numpy as np\na = np.arange(1000.0); (a * 2 + 1).sum(); np.random.default_rng(0).random(100).mean()\n",
    "pandas": (
        "import numpy as np, pandas as pd\n"
        "d = pd.DataFrame({'g': np.arange(200) % 7, 'x': np.arange(200.0), 's': ['a', 'b'] * 100})\n"
        "r = d.groupby('g').agg(x_mean=('x', 'mean'), x_sum=('x', 'sum'), n=('x', 'size'))\n"
        "str(r); str(d.describe()); d.sort_values('x').head(); d['x'].to_numpy()\n"
        # what a cell ending in a DataFrame formats (executor/lean/mime.py): HTML, columns as JSON
        "r._repr_html_(); d.iloc[:, 1].to_json(orient='values', date_format='iso', default_handler=str)\n"
        "pd.Series(d.index, dtype=object).to_json(orient='values', date_format='iso', default_handler=str)\n"
    ),
    "matplotlib.pyplot": (
        "import io, matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(); ax.plot([1, 2, 3], [1, 4, 9], label='l'); ax.bar([1, 2], [3, 4])\n"
        "ax.set_title('t'); ax.set_xlabel('x'); ax.legend(); fig.savefig(io.BytesIO(), format='png'); plt.close('all')\n"
    ),
}


def default_warmup(preload: list[str]) -> list[str]:
    return [WARMUPS[m] for m in preload if m in WARMUPS]


def warm_up(steps: list[str], stop=None) -> None:
    """Run warm-up steps with their output discarded and any failure ignored (they only
    fault pages in and fill caches; a job never sees their output); before each step,
    `stop()` may say that code arrived."""
    saved = sys.stdout, sys.stderr
    with open(os.devnull, "w") as null:
        for code in steps:
            if stop is not None and stop():
                break
            sys.stdout = sys.stderr = null
            try:
                exec(compile(code, "<warmup>", "exec"), {"__name__": "__warmup__"})
            except BaseException:  # noqa: BLE001
                pass
            finally:
                sys.stdout, sys.stderr = saved
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close("all")


def load(job_path: list[str], preload: list[str], warmup: list[str] = ()) -> None:
    """In the runner, before the first fork. Raises ImportError naming the module."""
    for path in job_path:
        if path not in sys.path:
            sys.path.append(path)
    os.environ.update(LIBRARY_ENV)
    if not preload:
        return
    import importlib  # here, not at the top: a pool without preload keeps its runner lean

    _matplotlib_config(job_path)
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - any failure to preload is a config error
            raise ImportError(f"preload of {name!r} failed: {type(exc).__name__}: {exc}") from None
    warm_up(list(warmup))
    # Move everything imported so far out of the collector's reach: a job's garbage
    # collections then never write to (copy-on-write fault) the preloaded objects.
    gc.collect()
    gc.freeze()


def _matplotlib_config(job_path: list[str]) -> None:
    """matplotlib wants a writable config dir: a private one (0700, the runner's, not the
    jobs'), seeded with the font list built with the environment. The pod's root is
    read-only: the first writable of the usual places, else /dev (a root-only tmpfs)."""
    import atexit
    import shutil
    import tempfile

    cfg = None
    for base in (os.environ.get("TMPDIR"), "/tmp", "/var/tmp", "/dev"):
        try:
            cfg = tempfile.mkdtemp(prefix="warmfleet-mpl-", dir=base) if base else None
        except OSError:
            continue
        if cfg:
            break
    if cfg is None:
        return  # matplotlib will say what it needs, if it is preloaded at all
    atexit.register(shutil.rmtree, cfg, True)
    seed_matplotlib_config(job_path, cfg)
    os.environ["MPLCONFIGDIR"] = cfg


def seed_matplotlib_config(job_path: list[str], cfg_dir: str) -> bool:
    """Copy the font list built with the environment into `cfg_dir` (made 0700 if
    missing): matplotlib then reads it instead of rebuilding it (scanning every font and
    running fc-list: ~0.9 s of a call inside gVisor here, with fontconfig's complaints on stderr).
    Plain reads and writes: a session process stays free of shutil. True if seeded."""
    for path in job_path:
        cache = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(path))), MPL_CACHE)
        if not os.path.isdir(cache):
            continue
        os.makedirs(cfg_dir, mode=0o700, exist_ok=True)
        for name in os.listdir(cache):
            with open(os.path.join(cache, name), "rb") as src, open(os.path.join(cfg_dir, name), "wb") as dst:
                dst.write(src.read())
        return True
    return False


def address_space_bytes() -> int:
    """This process's virtual size: a preloaded child's budgets count on top of it."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * _PAGE


class Figures:
    """Saves the job's matplotlib figures as PNG: whenever it calls pyplot.show() (then
    closes them, as an inline backend does) and those still open when its code ends.
    Into out/ (a job), or, with out_dir None, into `captured` (a session call, whose out/
    persists across calls). Runs as the job, inside its budgets."""

    def __init__(self, out_dir: str | None) -> None:
        self.out_dir = out_dir
        self.count = 0
        self.captured: list[bytes] = []
        self.on_png = None  # called with each figure's PNG and text too: the cell shows it (cell.py)

    def install(self) -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            self._patch(plt)
        else:
            sys.meta_path.insert(0, _PyplotHook(self))

    def _patch(self, plt) -> None:
        def show(*_args: object, **_kwargs: object) -> None:
            self.save_open()
            plt.close("all")

        plt.show = show

    def save_open(self) -> None:
        """Each open figure drawn once, to PNG bytes: shown (on_png) and kept as a file."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        nums = plt.get_fignums()
        if not nums:
            return
        import io

        for num in nums:
            figure = plt.figure(num)
            buf = io.BytesIO()
            figure.savefig(buf, format="png")
            png = buf.getvalue()
            if self.on_png is not None:
                self.on_png(png, figure_text(figure))
            if self.out_dir is None:
                self.captured.append(png)
            else:
                self._write(png)

    def _write(self, png: bytes) -> None:
        if os.path.islink(self.out_dir):
            return
        os.makedirs(self.out_dir, mode=0o700, exist_ok=True)
        while True:
            self.count += 1
            path = os.path.join(self.out_dir, FIGURE.format(self.count))
            if not os.path.lexists(path):
                break
        # O_EXCL|O_NOFOLLOW: a link the job planted at the name is not followed
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "wb") as f:
            f.write(png)


def figure_text(figure) -> str:
    """A figure's text/plain, as IPython's inline backend shows it."""
    try:
        width, height = (figure.get_size_inches() * figure.dpi).tolist()
        return f"<Figure size {width:g}x{height:g} with {len(figure.axes)} Axes>"
    except Exception:  # noqa: BLE001 - a figure the code broke: still an image
        return "<Figure>"


class _PyplotHook:
    """A meta-path finder that patches pyplot.show when a job imports pyplot itself."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def find_spec(self, name: str, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module) -> None:
            exec_module(module)
            self.figures._patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec
