#!/usr/bin/env python3
"""Fake `sprite-env`, the CLI every sprite's base image has (reference §6),
over the fake sprite's management socket (mgmt.ts). Python, because a bare
sprite (bare_root.ts) holds only the OS: no Deno there.

  sprite-env services create NAME --cmd C [--args a,b] [--env K=V,...]
      [--dir D] [--needs a,b] [--http-port P] [--duration 5s] [--no-stream]
  sprite-env services list | get N | start N | stop N | restart N
      | delete N | signal N SIG
  sprite-env curl [-X M] [-d DATA] [-H H] [-s] [-f] PATH

The socket is /.sprite/api.sock in a bare sprite; elsewhere the one in the
sprite's directory (named by FAKE_SPRITE_SANDBOX, else found from HOME).
"""
import http.client
import json
import os
import socket
import sys
import time


class Fail(Exception):
    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def socket_path():
    if os.path.exists("/.sprite/api.sock"):
        return "/.sprite/api.sock"
    d = os.environ.get("FAKE_SPRITE_SANDBOX")
    if d:
        return d + "/sprite/api.sock"
    home = os.environ.get("HOME")
    if home:
        return os.path.dirname(home.rstrip("/")) + "/sprite/api.sock"
    raise Fail("sprite-env: not inside a sprite")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("sprite")
        self.path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def call(method, path, body=None):
    try:
        c = UnixConnection(socket_path())
        headers = {"content-type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read().decode()
    except OSError as e:
        raise Fail("sprite-env: cannot reach the sprite runtime: %s" % e)


def answer(status, text):
    if status >= 400:
        msg = text.strip()
        try:
            msg = json.loads(msg).get("error", msg)
        except ValueError:
            pass
        raise Fail("Error: %s" % msg)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def flags(argv, known, bools=()):
    f, rest, i = {}, [], 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            k, eq, v = a[2:].partition("=")
            if k in bools:
                f[k] = "true"
            elif k in known:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise Fail("Error: --%s needs a value" % k)
                    v = argv[i]
                f[k] = v
            else:
                raise Fail("Error: unknown flag --%s" % k)
        else:
            rest.append(a)
        i += 1
    return f, rest


def split(v):
    return [x for x in (v or "").split(",") if x != ""]


def services(argv):
    verb, rest = (argv[0] if argv else ""), argv[1:]

    def path(n, tail=""):
        if not n:
            raise Fail("Error: services %s needs a name" % verb)
        return "/v1/services/%s%s" % (n, tail)

    if verb == "create":
        f, pos = flags(rest, ["cmd", "args", "env", "dir", "needs",
                              "http-port", "duration"], ["no-stream"])
        if not f.get("cmd"):
            raise Fail("Error: --cmd is required")
        body = {"cmd": f["cmd"], "args": split(f.get("args")),
                "env": split(f.get("env")), "needs": split(f.get("needs"))}
        if f.get("dir"):
            body["dir"] = f["dir"]
        status, text = call("PUT", path(pos[0] if pos else None),
                            json.dumps(body))
        if status >= 400 or "no-stream" in f:
            return answer(status, text)
        now = int(time.time() * 1000)
        print(json.dumps({"type": "started", "timestamp": now}))
        print(json.dumps({"type": "complete", "timestamp": now}))
        return 0
    if verb == "list":
        return answer(*call("GET", "/v1/services"))
    name = rest[0] if rest else None
    if verb == "get":
        return answer(*call("GET", path(name)))
    if verb in ("start", "stop", "restart"):
        return answer(*call("POST", path(name, "/" + verb)))
    if verb == "delete":
        return answer(*call("DELETE", path(name)))
    if verb == "signal":
        sig = rest[1] if len(rest) > 1 else None
        return answer(*call("POST", path(name, "/signal"),
                            json.dumps({"signal": sig})))
    raise Fail('Error: unknown services command "%s"' % verb)


def curl(argv):
    method, data, fail_on_error, path, i = None, None, False, None, 0
    while i < len(argv):
        a = argv[i]
        if a in ("-X", "--request"):
            i += 1
            method = argv[i]
        elif a in ("-d", "--data", "--data-raw"):
            i += 1
            data = argv[i]
        elif a in ("-H", "--header"):
            i += 1
        elif a in ("-s", "--silent", "-S"):
            pass
        elif a in ("-f", "--fail"):
            fail_on_error = True
        elif a.startswith("-") and set(a[1:]) <= set("sfS"):
            fail_on_error = fail_on_error or "f" in a
        elif a.startswith("-"):
            raise Fail("curl: unknown option %s" % a, 2)
        else:
            path = a
        i += 1
    if not path:
        raise Fail("curl: no URL specified", 2)
    for prefix in ("http://sprite", "https://sprite"):
        if path.startswith(prefix):
            path = path[len(prefix):]
    status, text = call(method or ("POST" if data else "GET"), path, data)
    if fail_on_error and status >= 400:
        raise Fail("curl: (22) The requested URL returned error: %d" % status,
                   22)
    sys.stdout.write(text)
    return 0


def main(argv):
    cmd, rest = (argv[0] if argv else ""), argv[1:]
    if cmd == "services":
        return services(rest)
    if cmd == "curl":
        return curl(rest)
    raise Fail('Error: unknown command "%s"' % cmd, 2)


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
    except Fail as e:
        sys.stderr.write(str(e) + "\n")
        code = e.code
    sys.exit(code)
