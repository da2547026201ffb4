#!/usr/bin/python3
"""pywinrm column of bench/side-by-side.sh: one pywinrm Protocol (python3-winrm, a persistent
requests session, Basic over plain HTTP) per winrm-sim virtual host, sending the same
Enumerate/Pull SOAP as winrm_exporter (built by hand, as pywinrm builds its own messages) and
parsing each page with xml.etree.ElementTree into rows of dicts.

Polls the hosts round-robin at --rate queries/s (0 = flat out) and prints one JSON line with
the process CPU (getrusage) and the queries completed in the window after --warmup.
"""
import argparse
import json
import os
import resource
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import winrm

NS_ENUM = "{http://schemas.xmlsoap.org/ws/2004/09/enumeration}"
NS_WSMAN = "{http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd}"
NS_SOAP = "{http://www.w3.org/2003/05/soap-envelope}"

# The exporter's header block (winrm/src/envelope.cpp build_envelope).
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
    ' xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"'
    ' xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"'
    ' xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"><s:Header><a:To>{to}</a:To>'
    '<w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/*'
    '</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">'
    'http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>'
    '<a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/enumeration/{action}'
    '</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize>'
    '<a:MessageID>uuid:{id}</a:MessageID><w:Locale xml:lang="en-US" s:mustUnderstand="false"/>'
    '<p:DataLocale xml:lang="en-US" s:mustUnderstand="false"/>'
    '<w:OperationTimeout>PT20.000S</w:OperationTimeout></s:Header><s:Body>{body}</s:Body></s:Envelope>'
)


def enumerate_body(wql):
    return ('<n:Enumerate><w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements>'
            '<w:Filter Dialect="http://schemas.microsoft.com/wbem/wsman/1/WQL">'
            f'{escape(wql)}</w:Filter></n:Enumerate>')


def pull_body(context):
    return (f'<n:Pull><n:EnumerationContext>{escape(context)}</n:EnumerationContext>'
            '<n:MaxElements>32000</n:MaxElements></n:Pull>')


def local(tag):
    return tag.rsplit("}", 1)[-1]


def parse_page(text, rows):
    """Appends the page's instances to rows (dicts); returns (done, context)."""
    body = ET.fromstring(text).find(NS_SOAP + "Body")
    response = body.find(NS_ENUM + "EnumerateResponse")
    if response is None:
        response = body.find(NS_ENUM + "PullResponse")
    if response is None:
        raise ValueError("neither EnumerateResponse nor PullResponse")
    context = response.findtext(NS_ENUM + "EnumerationContext") or ""
    # Windows puts Items/EndOfSequence in w: for EnumerateResponse and n: for PullResponse.
    items = response.find(NS_WSMAN + "Items")
    if items is None:
        items = response.find(NS_ENUM + "Items")
    if items is not None:
        for item in items:
            rows.append({local(p.tag): p.text for p in item})
    done = (not context or response.find(NS_WSMAN + "EndOfSequence") is not None
            or response.find(NS_ENUM + "EndOfSequence") is not None)
    return done, context


class Host:
    def __init__(self, name, port, user, password):
        self.to = f"http://{name}:{port}/wsman"
        self.protocol = winrm.Protocol(endpoint=f"http://127.0.0.1:{port}/wsman", transport="plaintext",
                                       username=user, password=password, message_encryption="never")
        self.protocol.transport.build_session()
        # The sim picks the virtual host from the Host header; the socket goes to loopback.
        self.protocol.transport.session.headers["Host"] = name
        # requests asks for gzip; Windows' WinRM listener never compresses, but winrm-sim (httplib
        # built with zlib) would, so ask for what Windows sends, as the exporter and floor do.
        self.protocol.transport.session.headers["Accept-Encoding"] = "identity"

    def poll(self, wql):
        rows = []
        message = ENVELOPE.format(to=self.to, action="Enumerate", id=uuid.uuid4(), body=enumerate_body(wql))
        for pages in range(1, 1001):
            done, context = parse_page(self.protocol.send_message(message), rows)
            if done:
                return rows, pages
            message = ENVELOPE.format(to=self.to, action="Pull", id=uuid.uuid4(), body=pull_body(context))
        raise ValueError("more than 1000 pages")


def cpu_times():
    """(user, system) CPU seconds of the whole process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--rate", type=float, default=40, help="queries/s over all hosts; 0 = flat out")
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--count", type=int, default=0,
                    help="replaces the window (for callgrind): flat out, one unmeasured pass over the hosts, "
                         "then this many queries")
    ap.add_argument("--user", default="monitor")
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--host-format", default="h{:05d}.sim.test")
    ap.add_argument("--wql", required=True)
    args = ap.parse_args()
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        os.environ.pop(var, None)  # loopback only
    with open(args.password_file) as f:
        password = f.readline().rstrip("\r\n")
    hosts = [Host(args.host_format.format(i), args.port, args.user, password)
             for i in range(1, args.hosts + 1)]

    start = time.monotonic()
    window_start, window_end = start + args.warmup, start + args.warmup + args.window
    measuring, cpu_start = False, (0.0, 0.0)
    queries = errors = rows = pages = issued = 0
    last_error = ""
    while True:
        now = time.monotonic()
        if args.count > 0:
            if not measuring and issued >= len(hosts):
                measuring, cpu_start = True, cpu_times()
            if queries + errors >= args.count:
                break
        elif args.rate > 0:
            due = start + issued / args.rate  # fixed schedule, as a scheduler polling every interval
            if due > now:
                time.sleep(min(due, window_end) - now)
                now = time.monotonic()
        if args.count == 0:
            if not measuring and now >= window_start:
                measuring, cpu_start = True, cpu_times()
            if now >= window_end:
                break
        host = hosts[issued % len(hosts)]
        issued += 1
        try:
            result, n_pages = host.poll(args.wql)
        except Exception as e:  # counted, and the run fails: every query must succeed
            if measuring:
                errors += 1
                last_error = f"{type(e).__name__}: {e}"
            continue
        if measuring:
            queries += 1
            rows += len(result)
            pages += n_pages
    user, system = (end - begin if measuring else 0.0 for end, begin in zip(cpu_times(), cpu_start))
    print(json.dumps({"client": "pywinrm", "queries": queries, "errors": errors,
                      "cpu_seconds": round(user + system, 6), "user_seconds": round(user, 6),
                      "system_seconds": round(system, 6), "window_seconds": args.window,
                      "rows_per_query": round(rows / queries, 2) if queries else 0,
                      "pages_per_query": round(pages / queries, 2) if queries else 0,
                      "last_error": last_error[:200]}), flush=True)
    return 0 if queries > 0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
