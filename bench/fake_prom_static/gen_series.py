import sys
n_pods, n_names = int(sys.argv[1]), int(sys.argv[2])
out = open(sys.argv[3], "w")
out.write('{"status":"success","data":[')
first = True
for p in range(n_pods):
    buf = []
    for m in range(n_names):
        buf.append('{"__name__":"container_metric_%03d_total","container":"c%d","instance":"10.0.%d.%d:10250","job":"kubelet","namespace":"ns-%d","node":"node-%d","pod":"pod-%05d"}' % (m, p % 3, p // 250, p % 250, p % 50, p % 100, p))
    out.write(("" if first else ",") + ",".join(buf))
    first = False
out.write(']}')
