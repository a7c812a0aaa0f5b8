// How bad a detection is. Detectors grade their evidence with it, claims carry it on the wire
// and the trust engine maps it to the benefit B of a true block.
#pragma once

#include <cstdint>
#include <string_view>

#include "meshd/common/result.hpp"

namespace meshd {

// Ordered: a higher value is more severe. `info` is a detector's grade only (below every
// threshold, never claimed); a claim carries low..critical, whose values travel in the wire
// format (proto/convert.hpp) unchanged.
enum class Severity : std::uint8_t { info = 0, low = 1, medium = 2, high = 3, critical = 4 };

std::string_view to_string(Severity s);
// "info", "low", "medium", "high" or "critical", any case; anything else is bad_severity.
Result<Severity> parse_severity(std::string_view text);

}  // namespace meshd
