// External alerts: Falco events as falcosidekick (webhook output) POSTs them, e.g.
//   {"uuid":"…","output":"… connection=10.0.0.5:43122->203.0.113.7:4444 …",
//    "priority":"Critical","rule":"Outbound Connection to C2 Servers",
//    "time":"2024-03-01T12:00:00.123456789Z","source":"syscall","hostname":"node-1",
//    "tags":["network","mitre_command_and_control"],
//    "output_fields":{"fd.sip":"203.0.113.7","fd.cip":"10.0.0.5","fd.sport":4444,
//                     "fd.name":"10.0.0.5:43122->203.0.113.7:4444","proc.name":"nc",
//                     "container.id":"0123456789ab","k8s.ns.name":"shop","k8s.pod.name":"web-1"}}
// Parsing is a pure function; the HTTP side lives in sensor/falco_endpoint.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/result.hpp"
#include "sensor/detectors/detection.hpp"

namespace meshd::sensor {

struct FalcoAlert {
  std::string rule;
  std::string priority;  // as sent ("Critical", "warning", …)
  Severity severity = Severity::info;
  std::string output;
  std::string source;    // "syscall", "k8s_audit", …
  std::string hostname;  // the Falco host
  std::vector<std::string> tags;
  TimeMs time = 0;  // from "time" (RFC 3339) or output_fields."evt.time" (ns); 0 if absent
  // The peer the alert is about, when it carries a usable address (host prefix).
  std::optional<Prefix> remote;
  std::uint16_t remote_port = 0;
  // egress: the workload was the client (it connected out); ingress: the peer connected in;
  // both: the fields did not say which side is local.
  Direction direction = Direction::both;
  std::string address_field;  // which field the address came from, e.g. "fd.rip"
  WorkloadIdentity identity;  // container.id, k8s.pod.name, k8s.ns.name, k8s.pod.uid
  std::string process;        // proc.name
  std::uint32_t pid = 0;      // proc.pid
  // Unusable optional fields (e.g. "fd.rip": "not-an-ip"): the alert is still accepted.
  std::vector<std::string> warnings;
};

// Parses one alert. Errors (invalid JSON, missing/mistyped "rule", "priority" or "output",
// unknown priority, malformed "time") name the field and the reason.
Result<FalcoAlert> parse_falco_alert(std::string_view body);

// Falco priority → severity: Emergency/Alert/Critical → critical, Error → high,
// Warning → medium, Notice → low, Informational/Info/Debug → info. Case-insensitive.
std::optional<Severity> falco_priority_to_severity(std::string_view priority);

// RFC 3339 timestamp ("2024-03-01T12:00:00.123456789Z", "+02:00" offsets) → Unix ms.
Result<TimeMs> parse_rfc3339_ms(std::string_view text);

struct FalcoMappingOptions {
  Severity min_severity = Severity::low;  // info/debug alerts never become detections
  // Confidence per severity (index = Severity value): Falco rules are precise but a rule
  // firing is still evidence about a workload more than about the remote address.
  double confidence[5] = {0.2, 0.4, 0.6, 0.8, 0.9};
};

// A detection when the alert names a remote address and is severe enough; nullopt otherwise.
// `now` is used when the alert carries no time.
std::optional<Detection> falco_to_detection(const FalcoAlert& alert, TimeMs now,
                                            const FalcoMappingOptions& options = {});

}  // namespace meshd::sensor
