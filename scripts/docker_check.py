"""make docker-check: build the image and run every docker-compose.yml service against a real Docker daemon.

Opt-in (not part of `make test`). Steps, each printed with its verdict:

1. build the image (timed; its size printed);
2. start `lab` and check that port 8888 answers only with the token, that it runs as CASEBOOK_UID, and that no
   `.env` and none of the server's secrets are visible inside it;
3. execute notebook 03 in smoke mode inside `lab` (no stderr, no error);
4. run `training`, then `prediction`, through the named `output` volume, with the compose file's defaults;
5. start `db` and `mlflow`, create a user, log a run from `lab` with that login, and check that `lab` without
   a login is refused (401);
6. `docker stop lab` ends Jupyter cleanly;

then remove every container, volume and the image it made. The services are started with `docker run`,
generated from docker-compose.yml itself (image, user, entrypoint, command, environment, volumes), on the host
network with the service names mapped to 127.0.0.1 (works wherever Docker runs on Linux, needs no bridge
network): every server is bound to loopback and to a free port. Needs DOCKER_HOST (or the default socket).
Exit code 0 when every step passes, 1 otherwise, 2 when no Docker daemon answers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "casebook-check"
CASEBOOK_SERVICES = ("mlflow", "lab", "training", "prediction")  # built from this repository's image
COMPOSE_PORTS = (5000, 5432, 8888)  # mlflow, db, lab
VARIABLE = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


def secret(n: int = 24) -> str:
    """Letters only: no digits a port remapping could touch."""
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(n))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(value, env: dict):
    """Compose's variable substitution: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``."""
    if isinstance(value, list):
        return [substitute(v, env) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def one(m):
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == ":?":
            raise SystemExit(f"docker-check: {name} is required ({arg})")
        return (arg or "") if op == ":-" else env.get(name, "")

    return VARIABLE.sub(one, value)


def remap(text: str, ports: dict[int, int]) -> str:
    """Compose's fixed ports → this run's free ones; 0.0.0.0 → 127.0.0.1 (the host network: loopback only)."""
    for fixed, free in ports.items():
        text = re.sub(rf"(?<![\d.]){fixed}(?!\d)", str(free), text)
    return text.replace("0.0.0.0", "127.0.0.1")


def run_args(spec: dict, service: str, env: dict, image: str, ports: dict[int, int]) -> list[str]:
    """``docker run`` arguments reproducing compose service ``service`` (see the module docstring)."""
    s = substitute(spec["services"][service], env)
    args = ["--name", f"{PROJECT}-{service}", "--network", "host"]
    args += [a for name in spec["services"] for a in ("--add-host", f"{name}:127.0.0.1")]
    if s.get("user"):
        args += ["--user", str(s["user"])]
    environment = dict(s.get("environment") or {})
    if service == "db":
        environment["PGPORT"] = str(ports[5432])
    for key, value in environment.items():
        args += ["-e", f"{key}={remap(str(value), ports)}"]
    for volume in s.get("volumes") or []:
        source, target = volume.split(":", 1)
        source = str((ROOT / source).resolve()) if source.startswith((".", "/")) else f"{PROJECT}_{source}"
        args += ["-v", f"{source}:{target}"]
    if s.get("entrypoint"):
        args += ["--entrypoint", s["entrypoint"][0]]
    args.append(image if service in CASEBOOK_SERVICES else s["image"])
    command = list(s.get("entrypoint", [])[1:]) + [remap(str(c), ports) for c in s.get("command") or []]
    return args + command


def docker(*args, check: bool = True, timeout: float = 1800, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(map(str, args[:3]))} … failed: {done.stderr.strip()[-800:]}")
    return done


def http(url: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def wait_for(what: str, ready, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready within {seconds:.0f} s")
        time.sleep(1)


class Check:
    def __init__(self):
        self.results: list[tuple[str, bool, str]] = []

    def step(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok


def main() -> int:
    if docker("info", check=False, timeout=60).returncode != 0:
        print("docker-check: error: no Docker daemon answers (start one, or set DOCKER_HOST)", file=sys.stderr)
        return 2
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    uid = os.getuid() if os.getuid() != 0 else 1000  # root's checkout: the image's default user
    token = secret(32)
    env = {
        "POSTGRES_PASSWORD": secret(),
        "MLFLOW_AUTH_ADMIN_PASSWORD": secret(),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret(48),
        "MLFLOW_TRACKING_USERNAME": "checker",
        "MLFLOW_TRACKING_PASSWORD": secret(),
        "CASEBOOK_UID": str(uid),
    }
    ports = {p: free_port() for p in COMPOSE_PORTS}
    image = f"casebook:{PROJECT}-{secrets.token_hex(4)}"
    canary = ROOT / ".env"
    made_canary = not canary.exists()
    if made_canary:  # a .env with the servers' secrets beside the checkout, as a user would have
        canary.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    check = Check()
    try:
        run_check(check, spec, env, ports, image, token, uid)
    except Exception as e:  # a step that could not even run
        check.step("the check ran to the end", False, f"{type(e).__name__}: {e}")
    finally:
        for service in spec["services"]:
            docker("rm", "-f", f"{PROJECT}-{service}", check=False)
        for volume in spec.get("volumes") or {}:
            docker("volume", "rm", "-f", f"{PROJECT}_{volume}", check=False)
        docker("rmi", "-f", image, check=False)
        if made_canary:
            canary.unlink(missing_ok=True)
        print("removed the check's containers, volumes and image", flush=True)
    failed = [name for name, ok, _ in check.results if not ok]
    print(f"\n{len(check.results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def run_check(check: Check, spec: dict, env: dict, ports: dict, image: str, token: str, uid: int) -> None:
    t0 = time.monotonic()
    build = docker(
        "build", "--network", "host", "--build-arg", f"UID={uid}", "-t", image, str(ROOT), check=False, timeout=3600
    )
    size = docker("image", "inspect", "-f", "{{.Size}}", image, check=False).stdout.strip()
    gb = f"{int(size) / 1e9:.2f} GB" if size.isdigit() else "?"
    if not check.step(
        "image builds",
        build.returncode == 0,
        f"{time.monotonic() - t0:.0f} s, {gb}" if build.returncode == 0 else build.stderr[-1500:],
    ):
        return

    # 2. lab: the image's own command, on loopback and a free port, with a known token
    cmd = json.loads(docker("image", "inspect", "-f", "{{json .Config.Cmd}}", image).stdout)
    lab = run_args(spec, "lab", env, image, ports) + [remap(c, {8888: ports[8888]}) for c in cmd]
    lab[lab.index(image) : lab.index(image)] = ["-e", f"JUPYTER_TOKEN={token}"]
    docker("run", "-d", *lab)
    url = f"http://127.0.0.1:{ports[8888]}"
    wait_for("JupyterLab", lambda: http(f"{url}/api/status")[0] in (200, 401, 403))
    anonymous = http(f"{url}/api/status")[0]
    with_token = http(f"{url}/api/status", {"Authorization": f"token {token}"})[0]
    check.step(
        "lab answers only with its token",
        anonymous in (401, 403) and with_token == 200,
        f"without: {anonymous}, with: {with_token}",
    )
    who = docker("exec", f"{PROJECT}-lab", "id", "-u").stdout.strip()
    check.step("lab runs as CASEBOOK_UID", who == str(uid), f"uid {who}")
    seen = docker("exec", f"{PROJECT}-lab", "sh", "-c", "env; find /home/casebook -name .env", check=False).stdout
    leaked = [
        k
        for k in ("POSTGRES_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")
        if env[k] in seen
    ]
    check.step(
        "no .env and no server secret inside lab",
        not leaked and ".env" not in seen,
        f"leaked: {leaked}" if leaked else "",
    )

    # 3. notebook 03, smoke mode, inside lab (a local MLflow store in the container)
    nb = docker(
        "exec",
        "-e",
        "CASEBOOK_MLFLOW_URI=",
        "-e",
        "CASEBOOK_OUTPUTS=/tmp/check",
        "-e",
        "CASEBOOK_MLFLOW=/tmp/check/mlflow",
        f"{PROJECT}-lab",
        "python",
        "-m",
        "casebook.notebooks",
        "--smoke",
        "--out",
        "/tmp/check/executed",
        "notebooks/03_synthetic_classification.ipynb",
        check=False,
        timeout=900,
    )
    problems = [line for line in nb.stdout.splitlines() if line.startswith("  ! ") and "absolute path" not in line]
    check.step(
        "notebook 03 runs in lab (smoke mode)",
        nb.returncode == 0 and not problems,
        "; ".join(problems)[:600] or nb.stdout.strip().splitlines()[-1] if nb.stdout else nb.stderr[-600:],
    )

    # 4. training, then prediction, through the named volume, with the compose file's defaults
    train = docker("run", "--rm", *run_args(spec, "training", env, image, ports), check=False, timeout=900)
    check.step(
        "training writes its model into the output volume",
        train.returncode == 0,
        (train.stdout.strip().splitlines() or [""])[-1] if train.returncode == 0 else train.stderr[-600:],
    )
    predict = docker("run", "--rm", *run_args(spec, "prediction", env, image, ports), check=False, timeout=900)
    accuracy = re.search(r"accuracy: ([\d.]+)", predict.stdout)
    check.step(
        "prediction reads it back from the volume",
        predict.returncode == 0 and accuracy is not None,
        f"accuracy {accuracy.group(1)}" if accuracy else predict.stderr[-600:],
    )

    # 5. db + mlflow; a run logged from lab with a user's login, refused without it
    docker("run", "-d", *run_args(spec, "db", env, image, ports))
    ready = spec["services"]["db"]["healthcheck"]["test"][-1]
    wait_for(
        "PostgreSQL",
        lambda: (
            docker("exec", f"{PROJECT}-db", "sh", "-c", f"PGPORT={ports[5432]} {ready}", check=False).returncode == 0
        ),
    )
    docker("run", "-d", *run_args(spec, "mlflow", env, image, ports))
    server = f"http://127.0.0.1:{ports[5000]}"
    wait_for("the MLflow server", lambda: http(f"{server}/health")[0] == 200, seconds=240)
    admin = base64.b64encode(f"admin:{env['MLFLOW_AUTH_ADMIN_PASSWORD']}".encode()).decode()
    created = http(
        f"{server}/api/2.0/mlflow/users/create",
        {"Authorization": f"Basic {admin}", "Content-Type": "application/json"},
        json.dumps({"username": env["MLFLOW_TRACKING_USERNAME"], "password": env["MLFLOW_TRACKING_PASSWORD"]}).encode(),
    )
    check.step("the MLflow server (PostgreSQL, logins) creates a user", created[0] == 200, created[1][:200])
    log = (
        "from casebook import tracking\n"
        "with tracking.run('docker-check', 'from-lab') as r:\n"
        "    tracking.log_metrics({'answer': 42.0})\n"
        "print(r.info.run_id)\n"
    )
    logged = docker("exec", f"{PROJECT}-lab", "python", "-c", log, check=False, timeout=300)
    run_id = logged.stdout.strip().splitlines()[-1] if logged.returncode == 0 and logged.stdout.strip() else ""
    user = base64.b64encode(f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}".encode())
    landed = http(f"{server}/api/2.0/mlflow/runs/get?run_id={run_id}", {"Authorization": f"Basic {user.decode()}"})
    check.step(
        "lab logs a run with the user's login",
        landed[0] == 200 and '"answer"' in landed[1],
        run_id or logged.stderr[-600:],
    )
    refused = docker(
        "exec",
        "-e",
        "MLFLOW_TRACKING_USERNAME=",
        "-e",
        "MLFLOW_TRACKING_PASSWORD=",
        f"{PROJECT}-lab",
        "python",
        "-c",
        log,
        check=False,
        timeout=300,
    )
    check.step(
        "lab without a login is refused (401)",
        refused.returncode != 0 and "401" in refused.stderr,
        refused.stderr.strip().splitlines()[-1][:300] if refused.stderr.strip() else "",
    )

    # 6. docker stop: tini forwards SIGTERM, Jupyter shuts down (no `make` as PID 1, nothing reinstalled)
    t1 = time.monotonic()
    docker("stop", "-t", "20", f"{PROJECT}-lab", check=False, timeout=120)
    code = docker("inspect", "-f", "{{.State.ExitCode}}", f"{PROJECT}-lab", check=False).stdout.strip()
    check.step("docker stop ends lab cleanly", code in ("0", "143"), f"exit {code} in {time.monotonic() - t1:.0f} s")


def compose_equivalents(env: dict | None = None) -> dict[str, list[str]]:
    """The ``docker run`` arguments of every service (for tests: they follow the compose file)."""
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = env or {
        "POSTGRES_PASSWORD": "p",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "a",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
        "CASEBOOK_UID": "1000",
    }
    ports = {p: p for p in COMPOSE_PORTS}
    return {s: run_args(spec, s, env, "casebook:latest", ports) for s in spec["services"]}


if __name__ == "__main__":
    print("docker-check:", " ".join(shlex.quote(a) for a in sys.argv[1:]) or "all steps", flush=True)
    sys.exit(main())
