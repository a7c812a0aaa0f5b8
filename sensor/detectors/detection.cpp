#include "sensor/detectors/detection.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

namespace meshd::sensor {

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::info:
      return "info";
    case Severity::low:
      return "low";
    case Severity::medium:
      return "medium";
    case Severity::high:
      return "high";
    case Severity::critical:
      return "critical";
  }
  return "invalid";
}

std::optional<Severity> parse_severity(std::string_view s) {
  std::string lower(s);
  std::ranges::transform(lower, lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (auto v :
       {Severity::info, Severity::low, Severity::medium, Severity::high, Severity::critical})
    if (lower == to_string(v)) return v;
  return std::nullopt;
}

Detection make_manual_detection(const trust::Prefix& prefix, double confidence, std::string reason,
                                trust::TimeMs now, trust::Direction direction, Severity severity) {
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
