// What meshctl parses from its command line: CIDRs (block add/del, explain, decisions) with
// Prefix::parse and durations (--ttl) with ctl::parse_duration. The input is the CIDR
// text, a NUL byte, then the duration text.
// Properties: an accepted CIDR prints to a canonical text that parses to the same prefix and
// prints the same; an accepted duration is positive, a whole multiple of its unit, and fits
// (no overflow); errors name the text.
#include <cstdint>
#include <string>

#include "meshd/common/prefix.hpp"
#include "meshd/ctl/client.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd;
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto nul = in.find('\0');
  const std::string cidr = in.substr(0, nul);
  const std::string duration = nul == std::string::npos ? "" : in.substr(nul + 1);

  if (auto p = Prefix::parse(cidr)) {
    const std::string text = p->to_string();
    auto back = Prefix::parse(text);
    FUZZ_CHECK(back.has_value() && *back == *p && back->to_string() == text);
    FUZZ_CHECK(p->len <= p->max_len());
    auto masked = Prefix::parse_masking(cidr);
    FUZZ_CHECK(masked.has_value() && *masked == *p);
  } else {
    FUZZ_CHECK(p.error().message.find('\n') == std::string::npos ||
               cidr.find('\n') != std::string::npos);
  }

  if (auto d = ctl::parse_duration(duration)) {
    FUZZ_CHECK(*d > 0);
    const char unit = duration.back();
    const std::int64_t scale = duration.ends_with("ms") ? 1
                               : unit == 's'            ? 1000
                               : unit == 'm'            ? 60'000
                               : unit == 'h'            ? 3'600'000
                                                        : 86'400'000;
    FUZZ_CHECK(*d % scale == 0);
  } else {
    FUZZ_CHECK(d.error().code == "bad_duration");
  }
  return 0;
}
