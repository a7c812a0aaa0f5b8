// The common output of every detector (threat feed, behavioural, external alert, manual):
// "this prefix looks bad, in this direction, this sure, for this reason, seen from this
// workload". The daemon turns a Detection into a signed block claim; detectors never block.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "meshd/common/direction.hpp"
#include "meshd/common/prefix.hpp"
#include "meshd/common/severity.hpp"
#include "meshd/common/time.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

struct Detection {
  Prefix prefix;  // what should be blocked (host prefix for most detectors)
  Direction direction = Direction::egress;
  std::string
      detector;  // stable id: "feed:<name>", "fanout", "scan", "bad_port", "falco", "manual"
  Severity severity = Severity::medium;
  double confidence = 0.5;    // in [0, 1]; the claim's confidence
  std::string reason;         // one human sentence, shown by `meshctl explain`
  WorkloadIdentity identity;  // who triggered it; empty for feed-only or manual detections
  TimeMs at = 0;              // when the evidence was observed
};

// The manual detector: what `meshctl block add CIDR --confidence C --reason R` produces.
// Confidence is clamped into [0, 1].
Detection make_manual_detection(const Prefix& prefix, double confidence, std::string reason,
                                TimeMs now, Direction direction = Direction::both,
                                Severity severity = Severity::high);

}  // namespace meshd::sensor
