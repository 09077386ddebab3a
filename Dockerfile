# casebook image: JupyterLab on 0.0.0.0:8888 (token printed in the logs).
# Install and run steps are the Makefile's own targets (`make venv`, `make lab`), so the image runs
# exactly what `make test` checks; tests/test_docker.py keeps it that way.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends graphviz make \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 casebook
USER casebook
WORKDIR /home/casebook/casebook
ENV VENV=/home/casebook/venv \
    CASEBOOK_MLFLOW=/home/casebook/mlflow \
    PATH=/home/casebook/venv/bin:$PATH
RUN mkdir -p /home/casebook/mlflow /home/casebook/output

# Dependencies first (cached layer), then the package and the rest of the repository.
COPY --chown=casebook requirements.txt pyproject.toml Makefile README.md ./
COPY --chown=casebook src ./src
RUN make venv PYTHON=python3.11 VENV=/home/casebook/venv
COPY --chown=casebook . .

EXPOSE 8888 5000
CMD ["make", "lab", "VENV=/home/casebook/venv", "LAB_IP=0.0.0.0"]
