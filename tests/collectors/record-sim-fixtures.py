#!/usr/bin/env python3
"""Re-records tests/fixtures/sim/: winrm-sim's raw SOAP responses (EnumerateResponse and
every PullResponse, verbatim) for the exact WQL of the built-in collectors that have no
real Windows capture in tests/fixtures/enum/.

Usage: tests/collectors/record-sim-fixtures.py [--build-dir DIR] [--host NAME]
       [--collectors cpu,logical_disk,memory,system,...] [--out DIR]

Starts winrm-sim (from DIR/sim/winrm-sim) on 127.0.0.1 with a throwaway certificate from
tests/scripts/gen-certs.sh and a random Basic password, sends the exporter's request shape
(OptimizeEnumeration, MaxElements 32000, MaxEnvelopeSize 512000, en-US) over HTTPS with
SNI and Host = --host, and stops the simulator by PID. Writes <collector>_<query>_pNNN.xml
(p000 = EnumerateResponse) plus queries.tsv, which the golden test checks against the
collectors' current WQL so stale recordings fail loudly. Only the listed collectors are
re-recorded: queries.tsv keeps the lines of the others, so recording a new collector
leaves the existing recordings (and their goldens) untouched.
Needs python3 with PyYAML (Debian: python3-yaml).
"""

import argparse
import base64
import http.client
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import yaml

SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_COLLECTORS = "cpu,logical_disk,memory,system,physical_disk,process,pagefile"
PAGE_SIZE = 4  # small pages so multi-instance classes span several Pulls, as on Windows
MAX_PAGES = 200  # bound on Pulls per enumeration

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "n": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
}
WQL_DIALECT = "http://schemas.microsoft.com/wbem/wsman/1/WQL"


def envelope(to, resource_uri, action, body, session_id):
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
        ' xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
        ' xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"'
        ' xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"'
        ' xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header>'
        f"<a:To>{escape(to)}</a:To>"
        f'<w:ResourceURI s:mustUnderstand="true">{escape(resource_uri)}</w:ResourceURI>'
        '<a:ReplyTo><a:Address s:mustUnderstand="true">'
        "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>"
        f'<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/enumeration/{action}</a:Action>'
        '<w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>'
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        '<w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
        '<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>'
        f'<p:SessionId s:mustUnderstand="false">uuid:{session_id}</p:SessionId>'
        "<w:OperationTimeout>PT20.000S</w:OperationTimeout></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


class SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port while SNI and Host carry the virtual host name."""

    def __init__(self, host, loopback_port, context):
        super().__init__(host, loopback_port, context=context, timeout=30)
        self._loopback_port = loopback_port

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self._loopback_port), timeout=30)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def start_sim(binary, workdir, password):
    subprocess.run(
        ["sh", os.path.join(SOURCE_DIR, "tests", "scripts", "gen-certs.sh"), workdir],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = os.path.join(workdir, "sim.yaml")
    ports = os.path.join(workdir, "sim.ports")
    with open(config, "w") as f:
        yaml.safe_dump(
            {
                "https": {
                    "address": "127.0.0.1",
                    "port": 0,
                    "cert": os.path.join(workdir, "server.pem"),
                    "key": os.path.join(workdir, "server.key"),
                },
                "page_size": PAGE_SIZE,
                "users": [{"username": "recorder", "password": password}],
            },
            f,
        )
    log = open(os.path.join(workdir, "sim.log"), "w")
    process = subprocess.Popen(
        [binary, "--config", config, "--ports-file", ports, "--log-level", "warn"],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(ports):
            break
        if process.poll() is not None:
            raise RuntimeError(f"winrm-sim exited early (status {process.returncode})")
        time.sleep(0.02)
    port = 0
    if os.path.exists(ports):
        with open(ports) as f:
            for line in f:
                scheme, value = line.split()
                if scheme == "https":
                    port = int(value)
    return process, port


def stop_sim(process):
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def expand_placeholders(wql, now):
    """{{now-15m}} -> the DMTF UTC instant, as the exporter fills it in when it sends the query
    (collectors/include/collectors/poll_time.h); queries.tsv keeps the unexpanded WQL."""
    import datetime
    import re

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def instant(match):
        back = 0 if match.group(1) is None else int(match.group(1)) * units[match.group(2)]
        moment = datetime.datetime.fromtimestamp(int(now - back), datetime.timezone.utc)
        return moment.strftime("%Y%m%d%H%M%S.000000+000")

    return re.sub(r"\{\{now(?:-(\d+)([smhd]))?\}\}", instant, wql)


def record_query(connection, host, port, authorization, namespace, wql):
    wql = expand_placeholders(wql, time.time())
    """Returns the raw response bodies: EnumerateResponse, then each PullResponse."""
    to = f"https://{host}:{port}/wsman"
    resource_uri = f"http://schemas.microsoft.com/wbem/wsman/1/wmi/{namespace.strip('/')}/*"
    session_id = str(uuid.uuid4()).upper()
    headers = {
        "Authorization": authorization,
        "Content-Type": "application/soap+xml;charset=UTF-8",
        "Host": f"{host}:{port}",
    }
    body = (
        "<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>"
        f'<w:Filter Dialect="{WQL_DIALECT}">{escape(wql)}</w:Filter></n:Enumerate>'
    )
    request = envelope(to, resource_uri, "Enumerate", body, session_id)
    pages = []
    for _ in range(MAX_PAGES):
        connection.request("POST", "/wsman", body=request, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} for {wql!r}: {data[:400]!r}")
        pages.append(data)
        root = ET.fromstring(data)
        response_body = root.find("s:Body", NS)
        done = response_body.find(".//w:EndOfSequence", NS) is not None
        done |= response_body.find(".//n:EndOfSequence", NS) is not None
        context = response_body.find(".//n:EnumerationContext", NS)
        if done or context is None or not (context.text or "").strip():
            return pages
        body = (
            f"<n:Pull><n:EnumerationContext>{escape(context.text.strip())}</n:EnumerationContext>"
            "<n:MaxElements>32000</n:MaxElements></n:Pull>"
        )
        request = envelope(to, resource_uri, "Pull", body, session_id)
    raise RuntimeError(f"more than {MAX_PAGES} pages for {wql!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(SOURCE_DIR, "build"))
    parser.add_argument("--host", default="golden-01.sim.test")
    parser.add_argument("--collectors", default=DEFAULT_COLLECTORS)
    parser.add_argument("--out", default=os.path.join(SOURCE_DIR, "tests", "fixtures", "sim"))
    args = parser.parse_args()

    binary = os.path.join(args.build_dir, "sim", "winrm-sim")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} not found: build the winrm-sim target first")
    os.makedirs(args.out, exist_ok=True)

    workdir = tempfile.mkdtemp(prefix="record-sim-")
    password = secrets.token_urlsafe(18)  # throwaway; never written to the fixtures
    authorization = "Basic " + base64.b64encode(f"recorder:{password}".encode()).decode()
    process = None
    manifest = []
    try:
        process, port = start_sim(binary, workdir, password)
        if port == 0:
            raise RuntimeError("winrm-sim wrote no https port")
        context = ssl.create_default_context(cafile=os.path.join(workdir, "ca.pem"))
        connection = SniConnection(args.host, port, context)
        for collector in args.collectors.split(","):
            path = os.path.join(SOURCE_DIR, "collectors", "builtin", f"{collector}.yml")
            if not os.path.exists(path):  # a worked example (collectors/examples/)
                path = os.path.join(SOURCE_DIR, "collectors", "examples", f"{collector}.yml")
            with open(path) as f:
                definition = yaml.safe_load(f)
            for name in os.listdir(args.out):
                if name.startswith(f"{collector}_") and name.endswith(".xml"):
                    os.remove(os.path.join(args.out, name))
            for index, query in enumerate(definition["queries"]):
                namespace = query.get("namespace", "root/cimv2")
                pages = record_query(
                    connection, args.host, port, authorization, namespace, query["wql"]
                )
                for number, data in enumerate(pages):
                    with open(os.path.join(args.out, f"{collector}_{index}_p{number:03d}.xml"), "wb") as f:
                        f.write(data)
                manifest.append((f"{collector}_{index}", len(pages), namespace, query["wql"]))
                print(f"{collector}_{index}: {len(pages)} page(s)")
        connection.close()
    finally:
        if process is not None:
            stop_sim(process)
        shutil.rmtree(workdir, ignore_errors=True)

    recorded = set(args.collectors.split(","))
    kept = []
    manifest_path = os.path.join(args.out, "queries.tsv")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            for line in f:
                if line.startswith("#") or not line.strip():
                    continue
                prefix = line.split("\t", 1)[0]
                if prefix.rsplit("_", 1)[0] not in recorded:
                    kept.append(line.rstrip("\n"))
    with open(manifest_path, "w") as f:
        f.write(f"# recorded from winrm-sim, host {args.host}, page_size {PAGE_SIZE}\n")
        f.write("# prefix\tpages\tnamespace\twql\n")
        for line in kept:
            f.write(line + "\n")
        for prefix, pages, namespace, wql in manifest:
            f.write(f"{prefix}\t{pages}\t{namespace}\t{wql}\n")


if __name__ == "__main__":
    main()
