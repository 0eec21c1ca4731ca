#!/usr/bin/env python3
"""make_seeds.py: (re)writes the hand-made seed inputs of the fuzz corpora
under spec/fuzz/<target>/seed-*, from the fixtures and rules in the tree.
Inputs the fuzzers found (crash-*, regression-*) are kept as they are.
Run from the repository root: python3 spec/fuzz/make_seeds.py"""
import glob, json, os

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(ROOT))
SEP = "\n--\n"

def put(target, name, text):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)

def j(v):
    return json.dumps(v, separators=(",", ":"))

# -- Prometheus series ------------------------------------------------------
prom = json.load(open(os.path.join(REPO, "spec/fixtures/prometheus/custom_metrics.json")))
for i, s in enumerate(prom["series"][:6]):
    put("prom_series", "fixture-%d" % i, j({"status": "success", "data": s["data"]}))
put("prom_series", "null-data", '{"status":"success","data":null}')
put("prom_series", "error", '{"status":"error","errorType":"bad_data","error":"parse error"}')
put("prom_series", "name-only", '{"status":"success","data":[{"__name__":"up"},{"__name__":"up"}]}')
put("prom_series", "no-name", '{"status":"success","data":[{"job":"a","b":"c"}]}')
put("prom_series", "escapes", '{"status":"success","data":[{"__name__":"a\\u00e9\\"\\n","x\\ty":"\\ud83d\\ude00"}],"warnings":["w"]}')

# -- Prometheus query ----------------------------------------------------------
put("prom_query", "vector", j({"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"pod": "a", "namespace": "default", "__name__": "x"}, "value": [1715851267.123, "1.5"]},
    {"metric": {}, "value": [1715851267, "NaN"]},
    {"metric": {"pod": "b"}, "value": [1715851267.5, "+Inf"]}]}}))
put("prom_query", "scalar", '{"status":"success","data":{"resultType":"scalar","result":[1715851267.1,"-Inf"]}}')
put("prom_query", "matrix", '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]}]}}')
put("prom_query", "string", '{"status":"success","data":{"resultType":"string","result":[1,"x"]}}')
put("prom_query", "error", '{"status":"error","errorType":"timeout","error":"query timed out","data":null}')
put("prom_query", "null-result", '{"status":"success","data":{"resultType":"vector","result":null}}')
put("prom_query", "ts-string", '{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":["1715851267.5","3e2"]}]}}')

# -- Kubernetes discovery ------------------------------------------------------
disc = json.load(open(os.path.join(REPO, "spec/fixtures/kube/discovery.json")))
docs = [j(disc["api"]), j(disc["groups"])]
for k in sorted(disc.keys()):
    if k not in ("api", "groups"):
        v = disc[k]
        if isinstance(v, dict):
            for gv in sorted(v.keys()) if all(isinstance(x, dict) for x in v.values()) else []:
                docs.append(j(v[gv]))
put("kube_discovery", "fixture", SEP.join(docs))
core = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
    {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
    {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod"},
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "Node"}]}
apps = {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
    {"name": "deployments", "singularName": "deployment", "namespaced": True, "kind": "Deployment"}]}
groups = {"kind": "APIGroupList", "groups": [
    {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}, {"groupVersion": "apps/v1beta1", "version": "v1beta1"}],
     "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]}
put("kube_discovery", "small", SEP.join([j({"kind": "APIVersions", "versions": ["v1"]}), j(groups), j(core), j(apps), "not json"]))

# -- Kubernetes LIST pages and WATCH stream --------------------------------------
objs = json.load(open(os.path.join(REPO, "spec/fixtures/kube/objects.json")))
def item(o):
    md = {"name": o["name"], "resourceVersion": "7"}
    if o.get("namespace"): md["namespace"] = o["namespace"]
    if o.get("labels"): md["labels"] = o["labels"]
    return {"metadata": md}
for res in objs["objects"][:3]:
    items = [item(o) for o in res["items"]]
    page1 = {"kind": "List", "metadata": {"resourceVersion": "10", "continue": "tok"}, "items": items[: len(items) // 2]}
    page2 = {"kind": "List", "metadata": {"resourceVersion": "10"}, "items": items[len(items) // 2:]}
    watch = "\n".join([
        j({"type": "ADDED", "object": {"metadata": {"name": "new", "namespace": "default", "resourceVersion": "11", "labels": {"a": "b"}}}}),
        j({"type": "MODIFIED", "object": item(res["items"][0])}),
        j({"type": "DELETED", "object": {"metadata": {"name": res["items"][-1]["name"], "namespace": res["items"][-1].get("namespace", "")}}}),
        j({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}}),
        j({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}}),
    ]) + "\n"
    put("kube_list", res["resource"], SEP.join([j(page1), j(page2), watch]))
put("kube_list", "empty", '{"metadata":{"resourceVersion":"1"},"items":null}' + SEP + "\n\n")

# -- kubeconfig ---------------------------------------------------------------------
put("kubeconfig", "token", """apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
    server: https://127.0.0.1:6443/
    insecure-skip-tls-verify: true
    tls-server-name: kube.local
contexts:
- name: c
  context: {cluster: k, user: u, namespace: default}
users:
- name: u
  user:
    token: abc
""")
put("kubeconfig", "data", """apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
    server: https://kube:443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=
contexts:
- {name: c, context: {cluster: k, user: u}}
users:
- name: u
  user:
    client-certificate-data: Zm9v
    client-key-data: YmFy
    username: admin
    password: secret
""")
put("kubeconfig", "exec", """current-context: c
clusters: [{name: k, cluster: {server: "http://x"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {exec: {command: /bin/true}}}]
""")
put("kubeconfig", "anchors", """current-context: &c c
clusters: [&cl {name: k, cluster: {server: "http://x", certificate-authority: ca.crt}}]
contexts: [{name: *c, context: {cluster: k, user: u}}]
users: [{name: u, user: {tokenFile: t, token-file: t}}]
""")

# -- label selectors -----------------------------------------------------------------
for i, s in enumerate(["app=web,tier!=db", "env in (prod, qa),!canary", "x notin (a,b,c)",
                       "a==b", "tier>3,tier<10", "k8s.io/app", "a in ()", "app=", "  a = b , c  ",
                       "example.com/x-y_z.q=v-1_2.3", "a=(b", "a in (b,,c)", "!"]):
    put("selector", "%02d" % i, s)

# -- request paths and values ---------------------------------------------------------
for i, s in enumerate(["/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/http_requests",
                       "/apis/external.metrics.k8s.io/v1beta1/namespaces/x/queue%2Flength",
                       "/apis/custom.metrics.k8s.io/v1beta1/%2e%2e/%2e%2e/etc/passwd",
                       "a%zz", "%00", "a+b%20c", "application/json;as=Table;g=meta.k8s.io;v=v1, */*;q=0.5",
                       "application/json;pretty=true", "1h2m3.5s", "-1.5ms", "9223372036854775807ns", "1d",
                       "/" * 40, "%e2%82%ac%ff"]):
    put("httputil", "%02d" % i, s)

# -- YAML and whole configs ------------------------------------------------------------
cfgs = sorted(glob.glob(os.path.join(REPO, "rules", "*.yaml")) + glob.glob(os.path.join(REPO, "rules", "examples", "*.yaml"))
              + glob.glob(os.path.join(REPO, "bench", "*.yaml")))
for p in cfgs:
    text = open(p).read()
    if len(text) > 64 * 1024:
        continue
    name = os.path.relpath(p, REPO).replace("/", "_")
    put("yaml", name, text)
    put("config", name, text)
put("yaml", "anchors", "a: &x [1, 2, {b: c}]\nb: *x\n<<: {m: 1}\nc: !!str 3\nd: |\n  lit\ne: >\n  fold\nf: ~\n")
put("yaml", "billion", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n")
put("yaml", "deep", "[" * 70 + "]" * 70)
put("config", "external", """externalRules:
- seriesQuery: '{__name__=~"^queue_.*",namespace!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  name: {matches: "^queue_(.*)$", as: "q_${1}"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
""")

# -- templates -------------------------------------------------------------------------
for i, t in enumerate([
        "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
        "<<range $i, $v := .GroupBySlice>><<if $i>>,<<end>><<$v>><<end>>",
        "<<index .LabelValuesByName \"pod\">> <<printf \"%q %d %5.2f\" .Series 3 1.5>>",
        "<<with .Series>><<.>><<else>>none<<end>> <<len .GroupBySlice>>",
        "<<if and (eq .GroupBy \"pod\") (ne .Series \"\")>>yes<<end>><<- /* c */ ->>",
        "<<.Missing>>", "<<define \"x\">><<end>>", "<<$x := 1>><<$x = 2>><<$x>>",
        "<<html .Series>><<js .Series>><<urlquery .Series>><<print .LabelValuesByName>>",
        "<<range .LabelValuesByName>><<.>><<end>><<not true>><<or 0 \"\" .GroupBy>>"]):
    put("template", "%02d" % i, t + SEP + 'web-0"\\')
