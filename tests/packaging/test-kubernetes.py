#!/usr/bin/env python3
"""packaging/kubernetes/: the manifests are valid and the shard wiring works.

1. Schema: every document is checked against the Kubernetes API models of Debian's
   python3-kubernetes (unknown fields at any depth, wrong types, missing required
   fields are errors). A broken copy must be rejected (negative control).
2. Wiring: StatefulSet replicas == TOTAL_SHARDS, SHARD comes from the pod ordinal label,
   the args use both, volumes name the ConfigMaps and the Secret defined here, the listener
   wants basic auth (--web.config.file from the Secret), the probes are exec probes running
   curl with the Secret's probe credentials against /-/ready and /-/healthy, the root
   filesystem is read-only and no capability is kept.
3. Behaviour: the pod is "run" for every ordinal: ConfigMap and Secret files are written
   where the volumes mount them (under a temp root), env and $(VAR) args are resolved as
   the kubelet does, and the exporter runs with exactly those args (listen address aside):
   --config.check passes, and the replicas' /sd lists split the configured targets into
   disjoint sets whose union is the inventory, each on the shard Prometheus' hashmod picks;
   the probes' own commands (curl, paths mapped to the temp root, port to the test's) exit 0,
   while the same request without the credentials file or with a wrong password fails, and
   an unauthenticated /sd answers 401 (so the probes pass because they authenticate).
4. prometheus-scrape.yml passes promtool check config and lists one /sd URL per replica.
Every process is stopped by PID; every wait is bounded.
"""
import argparse
import base64
import copy
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml
import kubernetes.client as k8s

MODELS = {("v1", "ConfigMap"): "V1ConfigMap", ("v1", "Secret"): "V1Secret",
          ("v1", "Service"): "V1Service", ("apps/v1", "StatefulSet"): "V1StatefulSet"}


class Failure(Exception):
    pass


def check_schema(value, type_name, path, errors):
    """Checks value against the python3-kubernetes model type_name, recursively."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list")
            return
        for i, item in enumerate(value):
            check_schema(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map")
            return
        inner = type_name[type_name.index(",") + 1:-1].strip()
        for key, item in value.items():
            check_schema(item, inner, f"{path}.{key}", errors)
        return
    if type_name == "str":
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
        return
    if type_name == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected an integer, got {value!r}")
        return
    if type_name == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected a boolean, got {value!r}")
        return
    if type_name in ("object", "datetime", "date", "float"):
        return  # int-or-string and free-form fields
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {type_name} map")
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            errors.append(f"{path}.{key}: unknown field of {type_name}")
            continue
        check_schema(item, model.openapi_types[by_json[key]], f"{path}.{key}", errors)
    # Required fields: the model's constructor rejects None for them.
    try:
        k8s.ApiClient()._ApiClient__deserialize(value, type_name)
    except (ValueError, TypeError) as e:
        errors.append(f"{path}: {e}")


def schema_errors(docs):
    errors = []
    for i, doc in enumerate(docs):
        model = MODELS.get((doc.get("apiVersion"), doc.get("kind")))
        if model is None:
            errors.append(f"document {i}: unexpected {doc.get('apiVersion')} {doc.get('kind')}")
            continue
        check_schema(doc, model, f"{doc['kind']}/{doc.get('metadata', {}).get('name')}", errors)
    return errors


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5.0, auth=None):
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return None, str(e)


def hashmod(name, total):
    return int.from_bytes(hashlib.md5(name.encode()).digest()[8:], "big") % total


def check_wiring(by_kind):
    sts = by_kind["StatefulSet"][0]
    pod = sts["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    if env.get("SHARD", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != \
            "metadata.labels['apps.kubernetes.io/pod-index']":
        raise Failure("SHARD does not come from the pod ordinal label")
    total = int(env["TOTAL_SHARDS"]["value"])
    if sts["spec"]["replicas"] != total:
        raise Failure(f"replicas {sts['spec']['replicas']} != TOTAL_SHARDS {total}")
    if total < 2:
        raise Failure("the example should run at least 2 shards")
    for arg in ("--shard=$(SHARD)", "--total-shards=$(TOTAL_SHARDS)"):
        if arg not in container["args"]:
            raise Failure(f"args lack {arg}")
    names = {d["metadata"]["name"] for k in ("ConfigMap", "Secret") for d in by_kind[k]}
    for volume in pod["volumes"]:
        ref = (volume.get("configMap") or {}).get("name") or \
            (volume.get("secret") or {}).get("secretName")
        if ref not in names:
            raise Failure(f"volume {volume['name']} refers to {ref}, not defined here")
    if not any(a.startswith("--web.config.file=") for a in container["args"]):
        raise Failure("the listener has no --web.config.file (basic auth)")
    for kind, path in (("readinessProbe", "/-/ready"), ("livenessProbe", "/-/healthy")):
        command = container[kind].get("exec", {}).get("command", [])
        if not command or command[0] != "curl" or "--config" not in command or "--fail" not in command \
                or not command[-1].endswith(":9725" + path):
            raise Failure(f"{kind} is not a curl exec probe of {path} with a credentials file: {command}")
    security = container["securityContext"]
    if not security.get("readOnlyRootFilesystem") or security.get("capabilities") != {"drop": ["ALL"]} \
            or security.get("allowPrivilegeEscalation") is not False:
        raise Failure(f"container securityContext too loose: {security}")
    if not pod["securityContext"].get("runAsNonRoot"):
        raise Failure("pod may run as root")
    service = by_kind["Service"][0]
    if service["spec"].get("clusterIP") != "None" or sts["spec"]["serviceName"] != service["metadata"]["name"]:
        raise Failure("the StatefulSet needs its headless Service for stable shard names")
    return sts, container, total


def materialise(root, sts, by_kind):
    """Writes every mounted ConfigMap/Secret key under root + mountPath."""
    pod = sts["spec"]["template"]["spec"]
    sources = {}
    for volume in pod["volumes"]:
        if "configMap" in volume:
            doc = next(d for d in by_kind["ConfigMap"] if d["metadata"]["name"] == volume["configMap"]["name"])
            sources[volume["name"]] = doc.get("data", {})
        else:
            doc = next(d for d in by_kind["Secret"] if d["metadata"]["name"] == volume["secret"]["secretName"])
            sources[volume["name"]] = doc.get("stringData", {})
    mounts = []
    for mount in pod["containers"][0]["volumeMounts"]:
        directory = root + mount["mountPath"]
        os.makedirs(directory, exist_ok=True)
        for key, text in sources[mount["name"]].items():
            with open(os.path.join(directory, key), "w") as f:
                f.write(text)
            os.chmod(os.path.join(directory, key), 0o600)
        mounts.append(mount["mountPath"])
    return mounts


def resolve_args(container, ordinal, root, mounts, port):
    env = {}
    for e in container["env"]:
        env[e["name"]] = str(ordinal) if "valueFrom" in e else e["value"]
    args = []
    for arg in container["args"]:
        arg = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)
        if arg.startswith("--web.listen-address="):
            arg = f"--web.listen-address=127.0.0.1:{port}"
        for mount in mounts:
            arg = arg.replace("=" + mount, "=" + root + mount)
        args.append(arg)
    return args, env


def probe_command(container, kind, root, mounts, port):
    """The probe's exec command as the kubelet would run it, paths under root, on port."""
    command = []
    for word in container[kind]["exec"]["command"]:
        for mount in mounts:
            if word.startswith(mount + "/"):
                word = root + word
        command.append(word.replace("127.0.0.1:9725", f"127.0.0.1:{port}"))
    return command


def run_probes(container, ordinal, root, mounts, port, base):
    for kind in ("readinessProbe", "livenessProbe"):
        command = probe_command(container, kind, root, mounts, port)
        result = subprocess.run(command, capture_output=True, text=True, timeout=15)
        if result.returncode != 0:
            raise Failure(f"shard {ordinal}: {kind} {command} exited {result.returncode}: {result.stderr}")
        # Negative controls: without the file, and with a wrong password, the probe fails.
        at = command.index("--config")
        bare = command[:at] + command[at + 2:]
        if subprocess.run(bare, capture_output=True, timeout=15).returncode == 0:
            raise Failure(f"shard {ordinal}: {kind} passes without credentials: auth is off")
        wrong = os.path.join(root, "wrong.curlrc")
        with open(wrong, "w") as f:
            f.write('user = "probe:not-the-password"\n')
        if subprocess.run(command[:at + 1] + [wrong] + command[at + 2:], capture_output=True,
                          timeout=15).returncode == 0:
            raise Failure(f"shard {ordinal}: {kind} passes with a wrong password")
    code, _ = http_get(base + "/sd")
    if code != 401:
        raise Failure(f"shard {ordinal}: /sd without credentials answered {code}, not 401")
    print(f"shard {ordinal}: exec probes pass with the Secret's credentials, fail without")


def run(args):
    src = os.path.join(args.source, "packaging", "kubernetes")
    with open(os.path.join(src, "winrm-exporter.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    errors = schema_errors(docs)
    if errors:
        raise Failure("schema: " + "; ".join(errors))
    print(f"schema: {len(docs)} documents valid ({', '.join(d['kind'] for d in docs)})")
    broken = copy.deepcopy(docs)
    sts_copy = next(d for d in broken if d["kind"] == "StatefulSet")
    sts_copy["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["execc"] = {}
    sts_copy["spec"]["replicas"] = "2"
    del sts_copy["spec"]["selector"]
    if len(schema_errors(broken)) < 3:
        raise Failure(f"negative control: only {schema_errors(broken)} found in a broken copy")
    print("schema: a broken copy is rejected (unknown field, wrong type, missing selector)")

    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    sts, container, total = check_wiring(by_kind)
    print(f"wiring: {total} replicas = TOTAL_SHARDS, SHARD from the pod ordinal")

    secret = by_kind["Secret"][0]["stringData"]
    match = re.search(r'^user = "([^:"]+):([^"]+)"$', secret["probe.curlrc"], re.M)
    if not match:
        raise Failure("probe.curlrc has no user = \"NAME:PASSWORD\" line")
    probe_auth = (match.group(1), match.group(2))
    if probe_auth[0] not in yaml.safe_load(secret["web-config.yml"])["basic_auth_users"]:
        raise Failure(f"the probe user {probe_auth[0]} is not in web-config.yml")
    config_text = by_kind["ConfigMap"][0]["data"]["config.yml"]
    inventory = [t["name"] for t in yaml.safe_load(config_text)["targets"]]
    procs = []
    with tempfile.TemporaryDirectory(prefix="k8s-") as root:
        mounts = materialise(root, sts, by_kind)
        try:
            seen = {}
            for ordinal in range(total):
                port = free_port()
                argv, env = resolve_args(container, ordinal, root, mounts, port)
                child_env = dict(os.environ, KRB5CCNAME=env["KRB5CCNAME"],
                                 KRB5_CONFIG=root + env["KRB5_CONFIG"])
                check = subprocess.run([args.exporter, *argv, "--config.check"], env=child_env,
                                       capture_output=True, text=True, timeout=30)
                if check.returncode != 0:
                    raise Failure(f"shard {ordinal}: --config.check: {check.stderr}{check.stdout}")
                proc = subprocess.Popen([args.exporter, *argv], env=child_env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(proc)
                base = f"http://127.0.0.1:{port}"
                status = None
                for _ in range(100):  # 10 s
                    if proc.poll() is not None:
                        raise Failure(f"shard {ordinal} exited with {proc.returncode}")
                    status, body = http_get(base + "/sd", auth=probe_auth)
                    if status == 200:
                        break
                    time.sleep(0.1)
                if status != 200:
                    raise Failure(f"shard {ordinal}: /sd answered {status}")
                targets = [t for group in json.loads(body) for t in group["targets"]]
                run_probes(container, ordinal, root, mounts, port, base)
                seen[ordinal] = targets
                print(f"shard {ordinal}: {argv[2:4]} /sd lists {len(targets)}: {sorted(targets)}")
            all_listed = [t for targets in seen.values() for t in targets]
            if sorted(all_listed) != sorted(inventory):
                raise Failure(f"shards list {sorted(all_listed)}, inventory is {sorted(inventory)}")
            for ordinal, targets in seen.items():
                for target in targets:
                    if hashmod(target, total) != ordinal:
                        raise Failure(f"{target} on shard {ordinal}, hashmod says {hashmod(target, total)}")
            if any(not targets for targets in seen.values()):
                raise Failure("a shard got no target: the example inventory should exercise both")
            print("wiring: disjoint, complete, each target on its hashmod shard")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()

    scrape = os.path.join(src, "prometheus-scrape.yml")
    out = subprocess.run([args.promtool, "check", "config", scrape], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise Failure(f"promtool check config: {out.stdout}{out.stderr}")
    with open(scrape) as f:
        jobs = yaml.safe_load(f)["scrape_configs"]
    urls = [c["url"] for c in jobs[0]["http_sd_configs"]]
    expected = [f"http://{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}.monitoring.svc:9725/sd"
                for i in range(total)]
    if urls != expected:
        raise Failure(f"/sd URLs {urls}, expected one per replica: {expected}")
    print("prometheus-scrape.yml: promtool OK, one /sd URL per replica")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", required=True)
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--promtool", default="promtool")
    args = parser.parse_args()
    try:
        run(args)
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
