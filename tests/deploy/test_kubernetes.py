"""deploy/kubernetes/: rendered offline with ``kubectl kustomize`` (secrets made from files as
its secrets/README.md says), validated against the Kubernetes schemas offline
(kubernetes-validate, strict), linted (yamllint), and checked for what matters: non-root,
read-only root filesystems, no privilege escalation or capabilities, requests and limits, the
relay's probes on /readyz and /healthz, a termination grace covering the relay's drain, the
Ingress's websocket settings, no secret outside Secrets, and every RDESK_* variable a real flag.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from rdesk.cli import build_parser
from rdesk.cli.config import environment_defaults
from rdesk.cli.host import host_settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes release the manifests are for (every field they use is GA there).
K8S_VERSION = "1.28.0"
PASSWORD = "deploy test password"

Doc = dict[str, Any]


def _run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr.strip()}"
    return done.stdout


def _make_secrets(secrets: Path) -> dict[str, str]:
    """The files secrets/README.md tells the user to make; returns the secret values."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl not found: apt-get install openssl (scripts/debian-packages.txt)"
    _run(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "30", "-subj", "/CN=rdesk relay", "-keyout", "relay.key",
         "-out", "relay.crt", cwd=secrets)
    rdesk = (sys.executable, "-m", "rdesk")
    token = _run(*rdesk, "relay", "--data-dir", "relay", "token", "create", "--label",
                 "desktops", cwd=secrets).splitlines()[0]
    (secrets / "desktop-relay-token").write_text(token + "\n")
    (secrets / "pw").write_text(PASSWORD + "\n")
    _run(*rdesk, "passwd", "--config-dir", "desktop-password", "--password-file", "pw",
         cwd=secrets)
    key = (secrets / "relay.key").read_text()
    return {"token": token, "password hash": (secrets / "desktop-password" / "password")
            .read_text().strip(), "relay key": key.split("-----")[2].strip()[:64]}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Doc], dict[str, str]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, ("kubectl not found: apt-get install kubernetes-client (its `kubectl "
                     "kustomize` renders offline; scripts/test installs it)")
    work = tmp_path_factory.mktemp("k8s") / "kubernetes"
    shutil.copytree(KUBE, work, ignore=shutil.ignore_patterns("*.crt", "*.key", "relay",
                                                              "desktop-*"))
    secrets = _make_secrets(work / "secrets")
    docs = [d for d in yaml.safe_load_all(_run(kubectl, "kustomize", work, cwd=work)) if d]
    return docs, secrets


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _pods(docs: list[Doc]) -> list[tuple[str, Doc]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs
            if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def test_every_resource_is_valid_against_the_schemas(rendered: tuple[list[Doc], Any]) -> None:
    docs, _ = rendered
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress",
                     "Namespace", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service",
                     "StatefulSet"]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises with the path


def test_the_schema_check_catches_a_misspelt_field(rendered: tuple[list[Doc], Any]) -> None:
    relay = _one(rendered[0], "Deployment", "rdesk-relay")
    spec = dict(relay["spec"]["template"]["spec"])
    spec["terminationGracePeriodSecondz"] = spec.pop("terminationGracePeriodSeconds")
    bad = {**relay, "spec": {**relay["spec"], "template": {**relay["spec"]["template"],
                                                           "spec": spec}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_yamllint_is_clean() -> None:
    files = sorted(KUBE.glob("*.yaml"))
    done = subprocess.run([sys.executable, "-m", "yamllint", "--strict", "-c",
                           str(KUBE / ".yamllint"), *map(str, files)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(files) >= 6


def test_pods_are_non_root_read_only_and_bounded(rendered: tuple[list[Doc], Any]) -> None:
    pods = _pods(rendered[0])
    assert sorted(name for name, _ in pods) == ["rdesk-desktop", "rdesk-redis", "rdesk-relay"]
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"] and not sc.get("privileged"), where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, where


def _env(container: Doc, docs: list[Doc]) -> dict[str, str]:
    """The container's environment: its ConfigMaps', then its own, ``$(VAR)`` expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        else:
            env[item["name"]] = {"status.podIP": "10.1.2.3", "metadata.name": "pod-0"}[
                item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def _flags(verb: str, env: dict[str, str]) -> argparse.Namespace:
    """What ``rdesk VERB`` makes of ``env`` (every RDESK_<VERB>_* must be one of its flags)."""
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    defaults = environment_defaults(verbs.choices[verb], verb, env)
    args = parser.parse_args([verb])
    for dest, (_, value) in defaults.items():
        setattr(args, dest, value)
    return args


def test_relay_probes_drain_and_flags(rendered: tuple[list[Doc], Any]) -> None:
    docs, _ = rendered
    pod = _one(docs, "Deployment", "rdesk-relay")["spec"]["template"]["spec"]
    [relay] = pod["containers"]
    [port] = relay["ports"]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = relay[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == (path, port["name"], "HTTPS")
    flags = _flags("relay", _env(relay, docs))
    assert flags.port == port["containerPort"]
    assert flags.public_url == f"wss://10.1.2.3:{port['containerPort']}"
    assert flags.redis == "redis://rdesk-redis-0.rdesk-redis:6379/0"
    assert (flags.cert, flags.key, flags.data_dir) == (
        Path("/etc/rdesk/tls/tls.crt"), Path("/etc/rdesk/tls/tls.key"), Path("/etc/rdesk/tokens"))
    mounts = {m["mountPath"]: m["name"] for m in relay["volumeMounts"]}
    assert mounts["/etc/rdesk/tls"] == "tls" and mounts["/etc/rdesk/tokens"] == "tokens"
    # Kubernetes kills the pod after terminationGracePeriodSeconds, counted from the preStop
    # hook: it must cover the hook, the relay's drain grace and a margin to close.
    command = relay["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= float(command[1]) + flags.grace + 5
    rollout = _one(docs, "Deployment", "rdesk-relay")["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0
    pdb = _one(docs, "PodDisruptionBudget", "rdesk-relay")["spec"]
    assert pdb["minAvailable"] >= 1 and pdb["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "rdesk-relay"}
    hpa = _one(docs, "HorizontalPodAutoscaler", "rdesk-relay")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "rdesk-relay" and hpa["minReplicas"] >= 2


def test_ingress_passes_websockets_to_the_relay(rendered: tuple[list[Doc], Any]) -> None:
    docs, _ = rendered
    ingress = _one(docs, "Ingress", "rdesk-relay")
    notes = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert notes[prefix + "backend-protocol"] == "HTTPS"  # the relay speaks only TLS
    # Idle websockets stay open well past the host's 20 s heartbeats and quiet viewers.
    assert int(notes[prefix + "proxy-read-timeout"]) >= 3600
    assert int(notes[prefix + "proxy-send-timeout"]) >= 3600
    assert notes[prefix + "proxy-buffering"] == "off"
    [rule] = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = _one(docs, "Service", backend["name"])
    assert backend["port"]["name"] in [p["name"] for p in service["spec"]["ports"]]
    hosts = _one(docs, "Service", "rdesk-relay-hosts")["spec"]
    assert (hosts["type"], hosts["externalTrafficPolicy"]) == ("LoadBalancer", "Local")


def test_desktops_keep_their_key_and_register(rendered: tuple[list[Doc], Any]) -> None:
    docs, _ = rendered
    desktops = _one(docs, "StatefulSet", "rdesk-desktop")["spec"]
    [container] = desktops["template"]["spec"]["containers"]
    [claim] = desktops["volumeClaimTemplates"]
    home = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[claim["metadata"]
                                                                          ["name"]]
    dockerfile = (ROOT / "deploy" / "images" / "desktop" / "Dockerfile").read_text()
    assert f"HOME={home} " in dockerfile and f'VOLUME ["{home}"]' in dockerfile
    flags = _flags("host", _env(container, docs))
    made = host_settings(flags)  # the checks `rdesk host` makes of these flags together
    assert made.relay_url == "wss://rdesk-relay:8443" and made.listen is False
    assert made.virtual == (1280, 720) and made.relay_fingerprint is None  # a blank to fill
    secret_dir = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["secrets"]
    assert flags.relay_token_file == Path(secret_dir) / "relay-token"
    assert flags.password_hash_file == Path(secret_dir) / "password-hash"
    volumes = {v["name"]: v for v in desktops["template"]["spec"]["volumes"]}
    secret = _one(docs, "Secret", volumes["secrets"]["secret"]["secretName"])
    assert set(secret["data"]) == {"relay-token", "password-hash"}


def test_no_secret_outside_secrets(rendered: tuple[list[Doc], dict[str, str]]) -> None:
    docs, secrets = rendered
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for what, value in secrets.items():
            assert value not in text, f"the {what} is in {doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "ConfigMap":
            for key, value in doc["data"].items():
                assert not re.search(r"TOKEN|PASSWORD|SECRET|_KEY$", key) or key.endswith(
                    "_FILE"), key
                assert not re.search(r"rdt_|PRIVATE KEY|\$scrypt|^scrypt", value), key
    # Nothing secret is committed: the secrets directory holds only its README and .gitignore.
    tracked = _run("git", "ls-files", "deploy", cwd=ROOT).split()
    assert [t for t in tracked if "/secrets/" in t] == [
        "deploy/kubernetes/secrets/.gitignore", "deploy/kubernetes/secrets/README.md"]
