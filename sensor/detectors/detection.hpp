// The common output of every detector (threat feed, behavioural, external alert, manual):
// "this prefix looks bad, in this direction, this sure, for this reason, seen from this
// workload". The daemon turns a Detection into a signed block claim; detectors never block.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sensor/events.hpp"
#include "trust/direction.hpp"
#include "trust/prefix.hpp"
#include "trust/time.hpp"

namespace meshd::sensor {

// Ordered: a higher value is more severe. The trust engine maps it to the benefit B(X).
enum class Severity : std::uint8_t { info = 0, low = 1, medium = 2, high = 3, critical = 4 };

std::string_view to_string(Severity s);
std::optional<Severity> parse_severity(std::string_view s);

struct Detection {
  trust::Prefix prefix;  // what should be blocked (host prefix for most detectors)
  trust::Direction direction = trust::Direction::egress;
  std::string
      detector;  // stable id: "feed:<name>", "fanout", "scan", "bad_port", "falco", "manual"
  Severity severity = Severity::medium;
  double confidence = 0.5;    // in [0, 1]; the claim's confidence
  std::string reason;         // one human sentence, shown by `meshctl explain`
  WorkloadIdentity identity;  // who triggered it; empty for feed-only or manual detections
  trust::TimeMs at = 0;       // when the evidence was observed
};

// The manual detector: what `meshctl block add CIDR --confidence C --reason R` produces.
// Confidence is clamped into [0, 1].
Detection make_manual_detection(const trust::Prefix& prefix, double confidence, std::string reason,
                                trust::TimeMs now,
                                trust::Direction direction = trust::Direction::both,
                                Severity severity = Severity::high);

}  // namespace meshd::sensor
