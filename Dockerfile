# casebook image: JupyterLab on 0.0.0.0:8888 (token printed in the logs, or JUPYTER_TOKEN).
# It installs with the Makefile's own target (`make venv`), so the image runs what `make test` checks;
# tests/test_docker.py keeps the two equal.
#
# Build arguments:
#   UID          the user's id inside the image (default 1000): give your own (`id -u`) so that a mounted
#                checkout stays writable; docker-compose.yml passes CASEBOOK_UID from .env
#   TORCH_INDEX  a package index for torch and torchvision (default: PyPI, whose torch 2.14.1 for x86-64 Linux
#                is a CUDA build carrying ~3 GB of NVIDIA libraries: the image then also runs on GPU hosts);
#                https://download.pytorch.org/whl/cpu gives the lean CPU-only image
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends graphviz make git tini \
 && rm -rf /var/lib/apt/lists/*

ARG UID=1000
# Every folder the user writes is created and owned here: a WORKDIR made after USER is root-owned with the
# legacy builder.
RUN useradd --create-home --uid "${UID}" casebook \
 && mkdir -p /home/casebook/casebook /home/casebook/mlflow /home/casebook/casebook/outputs/classifier \
 && chown -R casebook:casebook /home/casebook
USER casebook
WORKDIR /home/casebook/casebook
ENV VENV=/home/casebook/venv \
    CASEBOOK_MLFLOW=/home/casebook/mlflow \
    GIT_PYTHON_REFRESH=quiet \
    PATH=/home/casebook/venv/bin:$PATH

# Dependencies first (cached layer), then the package and the rest of the repository.
ARG TORCH_INDEX=
COPY --chown=casebook requirements.txt pyproject.toml Makefile README.md ./
COPY --chown=casebook src ./src
# JupyterLab's settings overrides (widget state saved in notebooks), installed into the venv by `make venv`
COPY --chown=casebook jupyterlab ./jupyterlab
RUN make venv PYTHON=python3.11 VENV=/home/casebook/venv TORCH_INDEX="${TORCH_INDEX}"
COPY --chown=casebook . .

EXPOSE 8888 5000
# tini as PID 1 forwards `docker stop` to Jupyter and reaps its kernels; nothing is installed at start.
ENTRYPOINT ["tini", "--"]
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/home/casebook/casebook"]
