# One image for the executor (python -m executor) and the GC sidecar (python -m gc_sidecar).
# It runs under gVisor through the pod's runtimeClassName: no runsc in the image.
# Build: docker build -t warmfleet:0.1.0 .

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY warmfleet ./warmfleet
COPY executor ./executor
COPY dispatcher ./dispatcher
COPY gc_sidecar ./gc_sidecar
COPY egress ./egress
COPY envs ./envs
# A venv copied whole into the final stage: no pip, compilers or build files ship.
# Job environments (k8s/pools.yaml jobEnvs): every envs/NAME.txt into its own venv
# /opt/envs/NAME, without pip, matplotlib's font list built once; a pool's jobs import
# from it (the job_path setting), never from /opt/warmfleet.
RUN python -m venv /opt/warmfleet \
 && /opt/warmfleet/bin/pip install --no-compile ".[fleet,http]" \
 && /opt/warmfleet/bin/python -m compileall -q /opt/warmfleet/lib \
 && for req in envs/*.txt; do \
      env="/opt/envs/$(basename "$req" .txt)" \
      && python -m venv --without-pip "$env" \
      && /opt/warmfleet/bin/pip --python "$env/bin/python" install --no-compile -r "$req" \
      && "$env/bin/python" -m compileall -q "$env/lib" \
      && mkdir -p "$env/share/warmfleet/matplotlib" \
      && { ! "$env/bin/python" -c "import matplotlib" 2>/dev/null \
           || MPLBACKEND=Agg MPLCONFIGDIR="$env/share/warmfleet/matplotlib" "$env/bin/python" -c "import matplotlib.font_manager"; } \
      || exit 1; \
    done \
 && /opt/warmfleet/bin/pip uninstall -y pip setuptools

FROM python:3.11.11-slim-bookworm
# The job uids (61000 + slot) need to read and run the interpreter and the venv: both
# world-readable, owned by root, writable by nobody else.
COPY --from=build /opt/warmfleet /opt/warmfleet
COPY --from=build /opt/envs /opt/envs
ENV PATH=/opt/warmfleet/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin warmfleet \
 && python -c "import executor, gc_sidecar, warmfleet.contract.probe"
# Non-root by default (the sidecar); the executor's pod spec sets runAsUser: 0 because it
# drops each job to a per-slot uid, which needs SETUID/SETGID inside the gVisor sandbox.
USER 65532
WORKDIR /
ENTRYPOINT ["python", "-m"]
CMD ["executor"]
