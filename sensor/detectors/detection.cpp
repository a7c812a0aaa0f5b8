#include "sensor/detectors/detection.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

namespace meshd::sensor {

Detection make_manual_detection(const Prefix& prefix, double confidence, std::string reason,
                                TimeMs now, Direction direction, Severity severity) {
  Detection d;
  d.prefix = prefix;
  d.direction = direction;
  d.detector = "manual";
  d.severity = severity;
  d.confidence = std::isnan(confidence) ? 0.0 : std::clamp(confidence, 0.0, 1.0);
  d.reason = std::move(reason);
  d.at = now;
  return d;
}

}  // namespace meshd::sensor
