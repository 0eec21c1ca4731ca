# Fake Prometheus for prom.c tests: records every request as a JSON line in
# LOG, answers according to the X-Mode request header.
import json, sys, time, os
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
LOG = sys.argv[2]
BIG = sys.argv[3] if len(sys.argv) > 3 else None
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode() if n else ""
        hdrs = [[k, v] for k, v in self.headers.items()]
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "headers": hdrs, "body": body, "port": self.client_address[1]}) + "\n")
        mode = self.headers.get("X-Mode", "series_ok")
        status, ctype, out = 200, "application/json", None
        if mode == "series_ok":
            out = json.dumps({"status": "success", "data": [
                {"__name__": "b_metric", "pod": "p1", "namespace": "n"},
                {"namespace": "n2", "__name__": "b_metric", "pod": "p2"},
                {"__name__": "a_metric", "z": "1", "a": "2"},
                {"pod": "x"},
            ], "warnings": ["w"]})
        elif mode == "series_null":
            out = '{"status":"success","data":null}'
        elif mode == "series_trailing_status":
            out = '{"data":[{"__name__":"x","a":"1"}],"status":"success"}'
        elif mode == "error":
            status = 400
            out = '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": boom"}'
        elif mode == "error422":
            status = 422
            out = '{"status":"error","errorType":"execution","error":"exec failed"}'
        elif mode == "s500":
            status = 500; ctype = "text/html"; out = "<html>oops</html>"
        elif mode == "s404":
            status = 404; ctype = "text/plain"; out = "not found"
        elif mode == "html":
            ctype = "text/html"; out = "<html>not json</html>"
        elif mode == "truncated":
            out = '{"status":"success","data":[{"__name__":"x"'
        elif mode == "hang":
            time.sleep(30); return
        elif mode == "vector":
            out = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"pod": "p1", "__name__": "m", "namespace": "ns"}, "value": [1715851267.123, "1.5"]},
                {"metric": {}, "value": [1715851267.1, "NaN"]},
                {"metric": {"a": "b"}, "value": [1715851267, "+Inf"]},
                {"metric": {"a": "c"}, "value": [1715851267.12345, "-Inf"]},
                {"metric": {"h": "1"}, "histogram": [1715851267.5, {"count": "3", "sum": "1"}]},
            ]}})
        elif mode == "scalar":
            out = '{"status":"success","data":{"resultType":"scalar","result":[1715851267.5,"42"]}}'
        elif mode == "matrix":
            out = '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}'
        elif mode == "string":
            out = '{"status":"success","data":{"resultType":"string","result":[1,"x"]}}'
        elif mode == "badnum":
            out = '{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}'
        elif mode == "gzip":
            import gzip
            b = gzip.compress(b'{"status":"success","data":{"resultType":"scalar","result":[1,"7"]}}')
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)
            return
        elif mode == "bigbody":
            out = '{"status":"success","data":' + '[' + ','.join(['{"a":"b"}'] * 100000) + ']}'
        elif mode == "big":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(os.path.getsize(BIG)))
            self.end_headers()
            with open(BIG, "rb") as f:
                while True:
                    c = f.read(1 << 20)
                    if not c: break
                    self.wfile.write(c)
            return
        b = out.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    do_GET = handle_any
    do_POST = handle_any
srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if os.environ.get("TLS_CERT"):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.environ["TLS_CERT"], os.environ["TLS_KEY"])
    if os.environ.get("TLS_CLIENT_CA"):
        ctx.load_verify_locations(os.environ["TLS_CLIENT_CA"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
