// Falco alert JSON (falcosidekick webhook body) through parse_falco_alert and
// falco_to_detection.
// Properties: parsing is deterministic; an error is one sentence; an accepted alert's severity
// is its priority's; a remote address is a host prefix that re-parses to itself; a detection
// exists only for an alert with a remote address at or above the minimum severity, blocks
// exactly that host, has confidence in [0, 1] and the alert's direction.
#include <cmath>
#include <cstdint>
#include <string_view>

#include "sensor/detectors/falco.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto a = sensor::parse_falco_alert(body);
  auto b = sensor::parse_falco_alert(body);
  FUZZ_CHECK(a.has_value() == b.has_value());
  if (!a) {
    FUZZ_CHECK(!a.error().message.empty());
    FUZZ_CHECK(a.error().message.find('\n') == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(a->rule == b->rule && a->remote == b->remote && a->time == b->time);
  auto sev = sensor::falco_priority_to_severity(a->priority);
  FUZZ_CHECK(sev.has_value() && *sev == a->severity);
  if (a->remote) {
    FUZZ_CHECK(a->remote->is_host());
    auto back = Prefix::parse(a->remote->to_string());
    FUZZ_CHECK(back.has_value() && *back == *a->remote);
  }
  const sensor::FalcoMappingOptions options;
  const TimeMs now = 1'700'000'000'000;
  auto d = sensor::falco_to_detection(*a, now, options);
  if (d) {
    FUZZ_CHECK(a->remote.has_value() && d->prefix == *a->remote);
    FUZZ_CHECK(static_cast<int>(a->severity) >= static_cast<int>(options.min_severity));
    FUZZ_CHECK(d->confidence >= 0 && d->confidence <= 1 && std::isfinite(d->confidence));
    FUZZ_CHECK(d->direction == a->direction);
    FUZZ_CHECK(d->detector == "falco");
  } else if (a->remote) {
    FUZZ_CHECK(static_cast<int>(a->severity) < static_cast<int>(options.min_severity));
  }
  return 0;
}
