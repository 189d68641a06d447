#!/usr/bin/env python3
"""The training load of `benches/pgo.sh`: a request mix the profile-guided build learns from.

    pgo_train.py PORT CREDENTIALS REQUESTS [CONNECTIONS]

CREDENTIALS is a TSV file of `kind<TAB>sid<TAB>secret<TAB>account` lines, `kind` one of
`scoped` (campaigns GET/POST, reports GET), `legacy` or `limited` (scoped, with a rate limit
low enough to be refused with 429). Sends REQUESTS requests over CONNECTIONS keep-alive
connections (a connection the gateway closes is opened again) and prints the count of each
status. Exits non-zero when the gateway never answered, or when an expected kind of answer
(200, 401, 403, 429) is missing: a profile trained without them would treat those paths as
cold.

The mix is the gateway's daily work, not one benchmark's: mostly allowed GETs and JSON POSTs
(fixed length and chunked), with queries, encoded bytes and HEAD; then what it refuses (no
or malformed credentials, a wrong secret, an out-of-scope method or API, an unknown path,
the rate limit). Standard library only, so a build machine needs nothing but Python 3.
"""
import asyncio
import base64
import random
import sys
import time


def basic(sid, secret):
    return "Basic " + base64.b64encode(f"{sid}:{secret}".encode()).decode()


def request(method, path, auth=None, body=None, chunked=False):
    head = f"{method} {path} HTTP/1.1\r\nHost: api.example.test\r\nUser-Agent: pgo-train\r\n"
    if auth is not None:
        head += f"Authorization: {auth}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    head += "Content-Type: application/json\r\n"
    if chunked:
        half = len(body) // 2
        parts = [body[:half], body[half:]]
        data = "".join(f"{len(p):x}\r\n{p}\r\n" for p in parts) + "0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n" + data).encode()
    return (head + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()


def mix(creds, rng, size=4000):
    """`size` ready-made requests, in the proportions of the module doc."""
    scoped = [c for c in creds if c[0] == "scoped"]
    legacy = [c for c in creds if c[0] == "legacy"]
    limited = [c for c in creds if c[0] == "limited"]
    out = []
    for i in range(size):
        kind, sid, secret, account = rng.choice(scoped)
        auth = basic(sid, secret)
        base = f"/Mediapartners/{account}"
        roll = rng.random()
        n = rng.randrange(1, 100000)
        if roll < 0.45:
            out.append(request("GET", f"{base}/Campaigns/{n}?PageSize=100&Page={n % 7}", auth))
        elif roll < 0.55:
            out.append(request("GET", f"{base}/Reports/{n}/Runs", auth))
        elif roll < 0.60:
            out.append(request("GET", f"{base}/Campaigns/caf%C3%A9-{n}/Ads", auth))
        elif roll < 0.63:
            out.append(request("HEAD", f"{base}/Campaigns/{n}", auth))
        elif roll < 0.73:
            body = '{"Name":"campaign %d","Budget":%d,"Tags":["a","b"]}' % (n, n * 3)
            out.append(request("POST", f"{base}/Campaigns", auth, body, chunked=i % 4 == 0))
        elif roll < 0.76 and legacy:
            _, lsid, lsecret, laccount = rng.choice(legacy)
            out.append(request("GET", f"/Mediapartners/{laccount}/Anything/{n}", basic(lsid, lsecret)))
        elif roll < 0.79 and limited:
            _, rsid, rsecret, raccount = rng.choice(limited)
            out.append(request("GET", f"/Mediapartners/{raccount}/Campaigns/{n}", basic(rsid, rsecret)))
        elif roll < 0.83:
            out.append(request("DELETE", f"{base}/Campaigns/{n}", auth))  # method out of scope
        elif roll < 0.86:
            out.append(request("GET", f"{base}/Actions/{n}", auth))  # API out of scope
        elif roll < 0.89:
            out.append(request("GET", f"/unknown/{n}", auth))  # in no API
        elif roll < 0.93:
            out.append(request("GET", f"{base}/Campaigns/{n}", basic(sid, secret[:-1] + "x")))
        elif roll < 0.97:
            out.append(request("GET", f"{base}/Campaigns/{n}"))  # no credentials
        else:
            out.append(request("GET", f"{base}/Campaigns/{n}", "Basic !!notbase64!!"))
    return out


async def read_response(reader, method_head):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection" and b"close" in value:
            close = True
    if method_head:
        return status, close
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


async def connection(port, requests, budget, counts, offset):
    i = offset
    while budget[0] > 0:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        try:
            while budget[0] > 0:
                budget[0] -= 1
                req = requests[i % len(requests)]
                i += 7
                writer.write(req)
                status, close = await read_response(reader, req.startswith(b"HEAD "))
                counts[status] = counts.get(status, 0) + 1
                if close:
                    break
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["broken"] = counts.get("broken", 0) + 1
        finally:
            writer.close()


async def wait_ready(port, probe, deadline):
    """Until the gateway answers the probe (an allowed request) with 200: it is listening
    and has loaded the tokens file."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(probe)
            status, _ = await read_response(reader, False)
            writer.close()
            if status == 200:
                return True
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        await asyncio.sleep(0.1)
    return False


async def main():
    port, cred_file, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 32
    creds = [line.rstrip("\n").split("\t") for line in open(cred_file) if line.strip()]
    rng = random.Random(20261207)
    requests = mix(creds, rng)
    first = next(c for c in creds if c[0] == "scoped")
    probe = request("GET", f"/Mediapartners/{first[3]}/Campaigns/1", basic(first[1], first[2]))
    if not await wait_ready(port, probe, time.monotonic() + 60):
        print("pgo_train: the gateway never answered an allowed request with 200", file=sys.stderr)
        return 1
    counts, budget = {}, [total]
    await asyncio.gather(*(connection(port, requests, budget, counts, k) for k in range(conns)))
    print("pgo_train:", dict(sorted(counts.items(), key=str)))
    missing = [s for s in (200, 401, 403, 429) if s not in counts]
    if missing:
        print(f"pgo_train: no {missing} answers: the mix did not reach those paths", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
