// Threat-feed files (IP/CIDR per line, ';' or '#' labels and comments).
// Properties: every line is an entry, a comment/blank line or a bad line, and each bad line
// gets an error naming the source and its line (up to max_errors); entries are at least as
// long as the minimum prefix lengths and have no host bits set; each entry's text parses back
// to the same prefix; the matcher built from the entries finds each entry (or a prefix that
// contains it).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/detectors/prefix_matcher.hpp"
#include "sensor/detectors/threat_feed.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshd;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  sensor::FeedParseOptions opt;
  opt.max_errors = 20;
  auto feed = sensor::parse_feed(text, "feed.txt", opt);

  std::size_t lines = 0;
  for (std::size_t pos = 0; pos < text.size(); ++lines) {
    auto nl = text.find('\n', pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  FUZZ_CHECK(feed.entries.size() + feed.bad_lines + feed.comments <= lines + 1);
  FUZZ_CHECK(feed.errors.size() == std::min(feed.bad_lines, opt.max_errors));
  for (const auto& e : feed.errors) FUZZ_CHECK(e.starts_with("feed.txt:"));
  std::vector<sensor::PrefixMatcher::Entry> entries;
  for (const auto& e : feed.entries) {
    const auto& p = e.prefix;
    FUZZ_CHECK(p.len >= (p.family == Family::v4 ? opt.min_len_v4 : opt.min_len_v6));
    auto back = Prefix::parse(p.to_string());  // strict: fails on host bits
    FUZZ_CHECK(back.has_value() && *back == p);
    entries.push_back({p, static_cast<std::uint32_t>(entries.size())});
  }
  const sensor::PrefixMatcher matcher(entries);
  for (const auto& e : feed.entries) {
    auto m = matcher.longest_match(e.prefix);
    FUZZ_CHECK(m.has_value() && m->prefix.contains(e.prefix));
  }
  return 0;
}
