"""Runs INSIDE a fresh gVisor sandbox (`runsc do python -S -I sandbox_probe.py SECONDS LOOPS`)
and prints one JSON line: the machine's fork-per-job ceiling and the cost of a job in a
child forked ahead of time. Standard library only, imports kept minimal, so the forking
process is as lean as warmfleet's runner (fork cost grows with the parent's mappings).
"""

import os
import sys
import time


def fork_loop(seconds: float) -> int:
    """fork + exit + wait of a minimal python, as fast as possible, for `seconds`."""
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        count += 1
    return count


def forked_ahead_job(rounds: int) -> list[float]:
    """A child forked before the job arrives runs print(1); time from sending the code to
    reading its output and reaping it."""
    compile("print(1)", "<warm>", "exec")  # warm the compiler before forking, as the runner does
    samples = []
    for _ in range(rounds):
        code_r, code_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(code_w)
            os.close(out_r)
            os.dup2(out_w, 1)
            code = os.read(code_r, 65536).decode()
            exec(compile(code, "<job>", "exec"), {"__name__": "__main__"})
            sys.stdout.flush()
            os._exit(0)
        os.close(code_r)
        os.close(out_w)
        time.sleep(0.01)  # let the child settle: we time the job, not the fork
        t0 = time.perf_counter()
        os.write(code_w, b"print(1)")
        os.close(code_w)
        out = os.read(out_r, 100)
        os.waitpid(pid, 0)
        samples.append(time.perf_counter() - t0)
        os.close(out_r)
        assert out == b"1\n", out
    return samples


def main() -> None:
    seconds, loops = float(sys.argv[1]), int(sys.argv[2])
    result_r, result_w = os.pipe()
    workers = []
    for _ in range(loops):  # one loop per core, all forked from this lean process
        pid = os.fork()
        if pid == 0:
            os.write(result_w, f"{fork_loop(seconds)}\n".encode())
            os._exit(0)
        workers.append(pid)
    t0 = time.monotonic()
    for pid in workers:
        os.waitpid(pid, 0)
    wall = time.monotonic() - t0
    os.close(result_w)
    counts = [int(x) for x in os.read(result_r, 4096).split()]
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    ahead = sorted(forked_ahead_job(30))
    import json  # only now: the forking process stays as lean as a runner

    print(json.dumps({
        "forks": sum(counts),
        "wall_s": round(wall, 3),
        "forks_per_s": round(sum(counts) / wall, 1),
        "fork_ms_per_loop": round(wall * 1000 * loops / max(1, sum(counts)), 2),
        "parent_maps": maps,
        "forked_ahead_print1_p50_ms": round(ahead[len(ahead) // 2] * 1000, 2),
        "in_gvisor": open("/proc/version").read().startswith("Linux version 4.4.0"),
    }))


if __name__ == "__main__":
    main()
