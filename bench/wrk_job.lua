-- wrk script for bench/api_latency.py: request shape from env, percentiles on stdout as JSON.
-- Every answer other than 200 counts as an error ("non200"), not only wrk's own >= 400.
local token = os.getenv("BENCH_TOKEN")
local mode = os.getenv("BENCH_MODE")          -- "post", "get" or "health"
local body = os.getenv("BENCH_BODY")
local ids = {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do ids[#ids + 1] = id end
local n = 0
local threads = {}

setup = function(thread)
  threads[#threads + 1] = thread
end

init = function(args)
  non200 = 0                                   -- global: read by done() through thread:get
end

request = function()
  n = n + 1
  local headers = {["Authorization"] = "Token " .. token}
  if mode == "post" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/api/tts/jobs/", headers, body)
  end
  local path = "/api/tts/health/"
  if mode == "get" then path = "/api/tts/jobs/" .. ids[(n % #ids) + 1] .. "/" end
  return wrk.format("GET", path, headers, nil)
end

response = function(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non200") or 0) end
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50": %d, "p95": %d, "p99": %d, "max": %d, ' ..
    '"status_errors": %d, "non200": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.status, bad, e.connect, e.read, e.write, e.timeout))
end
