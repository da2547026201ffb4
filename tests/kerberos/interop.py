#!/usr/bin/python3
"""Interoperability of winrm-sim's Negotiate acceptor with clients we did not write:
curl --negotiate and pywinrm (requests-kerberos) over HTTPS, pywinrm's own
message-encryption framing (winrm.encryption.Encryption) over HTTP driven by a
python3-gssapi wrap_iov shim, and a python3-gssapi SPNEGO initiator with channel
bindings against CBT-strict (accepted) and without (refused).

Usage: interop.py WINRM_SIM_BINARY TESTS_SCRIPTS_DIR   (real MIT KDC on loopback)
"""
import base64
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

SIM, SCRIPTS = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="winrm-interop-")
procs = []
failures = []


def check(name, ok, detail=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)[:500]), flush=True)
    if not ok:
        failures.append(name)


def enumerate_xml(host, port, scheme):
    return f"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:To>{scheme}://{host}:{port}/wsman</a:To><w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">153600</w:MaxEnvelopeSize><a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><w:OperationTimeout>PT60.000S</w:OperationTimeout></s:Header><s:Body><n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements><w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">SELECT Name, NumberOfCores FROM Win32_Processor</w:Filter></n:Enumerate></s:Body></s:Envelope>"""


def start_sim(name, cbt, https=True, http=False):
    cfg = os.path.join(WORK, name + ".yaml")
    ports = os.path.join(WORK, name + ".ports")
    with open(cfg, "w") as f:
        if https:
            f.write(f"https: {{address: 127.0.0.1, port: 0, cert: {WORK}/server.pem, key: {WORK}/server.key}}\n")
        if http:
            f.write("http: {address: 127.0.0.1, port: 0}\n")
        f.write(f"negotiate: {{keytab: {WORK}/kdc/http.keytab, require_encryption_on_http: true, cbt: {cbt}}}\n")
    log = open(os.path.join(WORK, name + ".log"), "w")
    p = subprocess.Popen([SIM, "--config", cfg, "--ports-file", ports, "--log-level", "info"],
                         stdout=log, stderr=log)
    procs.append(p)
    for _ in range(200):
        if os.path.exists(ports):
            break
        if p.poll() is not None:
            raise RuntimeError("winrm-sim exited: " + open(log.name).read())
        time.sleep(0.05)
    out = {}
    with open(ports) as f:
        for line in f:
            scheme, port = line.split()
            out[scheme] = int(port)
    return out


def cert_end_point(port):
    der = ssl.get_server_certificate(("127.0.0.1", port))
    der = ssl.PEM_cert_to_DER_cert(der)
    return b"tls-server-end-point:" + hashlib.sha256(der).digest()  # sha256-signed cert


def main():
    kdc = os.path.join(WORK, "kdc")
    os.makedirs(kdc)
    subprocess.run([SCRIPTS + "/kdc.sh", "init", kdc, "300"], check=True, stdout=subprocess.DEVNULL)
    try:
        run_tests(kdc)
    finally:
        subprocess.run([SCRIPTS + "/kdc.sh", "stop", kdc])


def run_tests(kdc):
    os.environ["KRB5_CONFIG"] = kdc + "/krb5.conf"
    os.environ["KRB5CCNAME"] = "FILE:" + WORK + "/client.ccache"
    subprocess.run(["sh", SCRIPTS + "/gen-certs.sh", WORK], check=True)
    subprocess.run(["kinit", "-k", "-t", kdc + "/client.keytab", "exporter"], check=True)
    relaxed = start_sim("relaxed", "relaxed", https=True, http=True)
    strict = start_sim("strict", "strict")
    ca = WORK + "/ca.pem"

    # 1. curl --negotiate (HTTPS, no CBT: relaxed).
    port = relaxed["https"]
    r = subprocess.run(["curl", "-sS", "--negotiate", "-u", ":", "--cacert", ca, "-o", "-",
                        "-w", "\n%{http_code}", "-H", "Content-Type: application/soap+xml;charset=UTF-8",
                        "--data-binary", enumerate_xml("localhost", port, "https"),
                        f"https://localhost:{port}/wsman"], capture_output=True, text=True)
    check("curl --negotiate HTTPS Enumerate", r.stdout.endswith("\n200") and "EnumerateResponse" in r.stdout,
          r.stdout[-300:] + r.stderr)

    # 2. pywinrm with requests-kerberos (HTTPS).
    import winrm
    proto = winrm.Protocol(endpoint=f"https://localhost:{port}/wsman", transport="kerberos",
                           ca_trust_path=ca, server_cert_validation="validate")
    try:
        body = proto.send_message(enumerate_xml("localhost", port, "https"))
        body = body.decode() if isinstance(body, bytes) else body
        check("pywinrm kerberos HTTPS Enumerate", "EnumerateResponse" in body and "NumberOfCores" in body,
              body[:300])
    except Exception as e:  # noqa: BLE001
        check("pywinrm kerberos HTTPS Enumerate", False, repr(e))

    # 3. pywinrm's Encryption framing over HTTP with a python3-gssapi wrap_iov shim.
    import gssapi
    import gssapi.raw as graw
    import requests

    class GssShim(requests.auth.AuthBase):
        def __init__(self, host):
            self.ctx = gssapi.SecurityContext(
                name=gssapi.Name("HTTP@" + host, gssapi.NameType.hostbased_service),
                mech=gssapi.Mechanism.from_sasl_name("SPNEGO"), usage="initiate",
                flags=gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.confidentiality
                | gssapi.RequirementFlag.integrity | gssapi.RequirementFlag.out_of_sequence_detection)

        def __call__(self, r):
            return r

        def wrap_winrm(self, host, message):
            iov = graw.IOV(graw.IOVBufferType.header, message, graw.IOVBufferType.padding, std_layout=False)
            graw.wrap_iov(self.ctx, iov, confidential=True)
            return iov[1].value + (iov[2].value or b""), iov[0].value

        def unwrap_winrm(self, host, message, header):
            iov = graw.IOV((graw.IOVBufferType.header, False, header), message,
                           (graw.IOVBufferType.data, False, b""), std_layout=False)
            graw.unwrap_iov(self.ctx, iov)
            return iov[1].value

    http_port = relaxed["http"]
    host = "win01.sim.test"
    url = f"http://127.0.0.1:{http_port}/wsman"
    session = requests.Session()
    shim = GssShim(host)
    session.auth = shim
    token = shim.ctx.step()
    resp = session.post(url, data=b"", headers={"Host": host, "Authorization": "Negotiate " + base64.b64encode(token).decode(),
                                                 "Content-Type": "application/soap+xml;charset=UTF-8"})
    server_token = resp.headers.get("WWW-Authenticate", "").split(" ", 1)[-1]
    shim.ctx.step(base64.b64decode(server_token))
    check("python-gssapi handshake on HTTP (mutual auth complete)", resp.status_code == 200 and shim.ctx.complete,
          resp.status_code)
    from winrm.encryption import Encryption
    enc = Encryption(session, "kerberos")
    soap = enumerate_xml(host, 5985, "http").encode()
    prepared = enc.prepare_encrypted_request(session, url, soap)
    prepared.headers["Host"] = host
    assert soap not in prepared.body
    resp = session.send(prepared)
    try:
        msg = enc.parse_encrypted_response(resp)
        msg = msg.decode() if isinstance(msg, bytes) else msg
        check("pywinrm Encryption framing over HTTP (encrypted both ways)",
              resp.status_code == 200 and "multipart/encrypted" in resp.headers.get("Content-Type", "")
              and "EnumerateResponse" in msg, msg[:300])
    except Exception as e:  # noqa: BLE001
        check("pywinrm Encryption framing over HTTP (encrypted both ways)", False, repr(e) + str(resp.status_code))
    # The same connection type without encryption is refused, like AllowUnencrypted=false.
    shim2 = GssShim(host)
    s2 = requests.Session()
    token = shim2.ctx.step()
    resp = s2.post(url, data=soap, headers={"Host": host, "Authorization": "Negotiate " + base64.b64encode(token).decode(),
                                             "Content-Type": "application/soap+xml;charset=UTF-8"})
    check("plaintext SOAP on HTTP refused with 500", resp.status_code == 500, resp.status_code)

    # 4. python3-gssapi SPNEGO initiator with and without channel bindings, CBT strict.
    sport = strict["https"]
    app_data = cert_end_point(sport)
    for bound in (True, False):
        ctx = gssapi.SecurityContext(
            name=gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service),
            mech=gssapi.Mechanism.from_sasl_name("SPNEGO"), usage="initiate",
            flags=gssapi.RequirementFlag.mutual_authentication,
            channel_bindings=graw.ChannelBindings(application_data=app_data) if bound else None)
        token = ctx.step()
        resp = requests.post(f"https://localhost:{sport}/wsman", verify=ca,
                             data=enumerate_xml("localhost", sport, "https"),
                             headers={"Authorization": "Negotiate " + base64.b64encode(token).decode(),
                                      "Content-Type": "application/soap+xml;charset=UTF-8"})
        if bound:
            ok = resp.status_code == 200 and "EnumerateResponse" in resp.text
            if ok:
                ctx.step(base64.b64decode(resp.headers["WWW-Authenticate"].split(" ", 1)[1]))
                ok = ctx.complete
            check("CBT strict: SPNEGO with tls-server-end-point bindings accepted", ok, resp.status_code)
        else:
            check("CBT strict: the same initiator without bindings refused (401)", resp.status_code == 401,
                  resp.status_code)


try:
    main()
except Exception as e:  # noqa: BLE001
    check("interop run", False, repr(e))
finally:
    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if not failures:
        subprocess.run(["rm", "-rf", WORK])
    else:
        print("work dir kept:", WORK)
print("interop:", "FAILED " + ", ".join(failures) if failures else "all passed")
sys.exit(1 if failures else 0)
