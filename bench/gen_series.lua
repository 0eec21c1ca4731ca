-- gen_series.lua: writes the fake Prometheus answers the benchmarks serve
-- statically (bench/README.md says which benchmark uses which file).
--   luajit bench/gen_series.lua series OUT PODS NAMES   /api/v1/series body
--   luajit bench/gen_series.lua vector OUT PODS NS [MOD REM]
--                                                        /api/v1/query body
--   (vector: one sample per pod-NNNNN, N = 1..PODS; with MOD and REM only
--   the pods with N % MOD == REM, i.e. what Prometheus answers to the
--   query of a selector that picks those pods)
-- Series have 6 labels: __name__, namespace, pod, container, job, instance.
local mode, out, a, b = arg[1], arg[2], tonumber(arg[3]), arg[4]
local mod, rem = tonumber(arg[5]), tonumber(arg[6])
local f = assert(io.open(out, "w"))
local buf, n = {}, 0
local function emit(s)
  n = n + 1; buf[n] = s
  if n >= 4096 then f:write(table.concat(buf, "", 1, n)); n = 0 end
end
if mode == "series" then
  local pods, names = a, tonumber(b)
  emit('{"status":"success","data":[')
  local first = true
  for m = 1, names do
    local metric = string.format("bench_metric_%03d_total", m)
    for p = 1, pods do
      emit(string.format('%s{"__name__":"%s","namespace":"ns-%d","pod":"pod-%05d",' ..
        '"container":"app","job":"bench","instance":"10.0.%d.%d:8080"}',
        first and "" or ",", metric, p % 50, p, p % 250, p % 200))
      first = false
    end
  end
  emit(']}')
elseif mode == "vector" then
  local pods, ns = a, b
  emit('{"status":"success","data":{"resultType":"vector","result":[')
  local first = true
  for p = 1, pods do
    if not mod or p % mod == rem then
      emit(string.format('%s{"metric":{"pod":"pod-%05d"},"value":[1700000000.123,"%d.5"]}',
        first and "" or ",", p, p))
      first = false
    end
  end
  emit(']}}')
else
  io.stderr:write("usage: gen_series.lua series|vector OUT N X\n"); os.exit(2)
end
f:write(table.concat(buf, "", 1, n)); f:close()
