#include "meshd/common/severity.hpp"

#include <algorithm>
#include <cctype>
#include <string>

namespace meshd {

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

Result<Severity> parse_severity(std::string_view text) {
  std::string lower(text);
  std::ranges::transform(lower, lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (auto v :
       {Severity::info, Severity::low, Severity::medium, Severity::high, Severity::critical})
    if (lower == to_string(v)) return v;
  return fail("bad_severity",
              "'" + std::string(text) + "' is not a severity (info|low|medium|high|critical)");
}

}  // namespace meshd
