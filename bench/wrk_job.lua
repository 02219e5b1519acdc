-- wrk script for bench/api_latency.py: request shape from env, percentiles on stdout as JSON.
local token = os.getenv("BENCH_TOKEN")
local mode = os.getenv("BENCH_MODE")          -- "post" or "get"
local body = os.getenv("BENCH_BODY")
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do ids[#ids + 1] = id end
local n = 0

request = function()
  n = n + 1
  local headers = {["Authorization"] = "Token " .. token}
  if mode == "post" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/tts/jobs/", headers, body)
  end
  local path = "/api/tts/jobs/" .. ids[(n % #ids) + 1] .. "/"
  if mode == "health" then path = "/api/tts/health/" end
  return wrk.format("GET", path, headers, nil)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, "p99": %d, "max": %d, ' ..
    '"status_errors": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
