-- wrk script: phoneCallChanged snapshots of 1,000 calls in turn, each with a rising version, so
-- that every request is a new, accepted snapshot (a real journal write on the full path).
local counter = 0
local auth = os.getenv("BENCH_AUTH")
local template = [[<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ici="urn:commbroker:ici:1"><soap:Body><ici:phoneCallChanged><call><id>bench-%d</id><version>%d</version><state>connected</state><agentId>alice</agentId><containerId>line-1</containerId><participants><item><userId>alice</userId><role>agent</role><address>+49301111</address></item></participants><capabilityList><item>hangup</item><item>hold</item></capabilityList><changedAt>2026-11-22T10:00:00Z</changedAt><direction>inbound</direction><remoteNumbers><item>+493012345678</item></remoteNumbers><localAddress>+49301111</localAddress></call></ici:phoneCallChanged></soap:Body></soap:Envelope>]]

request = function()
  counter = counter + 1
  local body = string.format(template, counter % 1000, counter)
  return wrk.format("POST", "/ici", {["Content-Type"] = "text/xml; charset=utf-8",
                                      ["Authorization"] = "Basic " .. auth}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
