// Number parsing for untrusted text (config values, files, request fields): the whole text
// must be the number, and it must lie in [min, max]. No exceptions, no locale, no leading
// '+' or whitespace. Use these instead of std::sto* / strto* / atoi.
#pragma once

#include <charconv>
#include <cmath>
#include <concepts>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"

namespace meshd {

// Integer in [min, max]. Errors read "'x' is not an integer" (code "not_a_number") or
// "'x' is out of range [min, max]" (code "out_of_range"); callers prefix the key or field.
template <std::integral T>
Result<T> parse_integer(std::string_view text, T min, T max, int base = 10) {
  T v{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  const bool whole = ptr == text.data() + text.size();
  if (text.empty() || (ec != std::errc{} && ec != std::errc::result_out_of_range) || !whole)
    return fail("not_a_number", "'" + std::string(text) + "' is not " +
                                    (base == 16 ? "a hexadecimal integer" : "an integer"));
  if (ec == std::errc::result_out_of_range || v < min || v > max)
    return fail("out_of_range", "'" + std::string(text) + "' is out of range [" +
                                    std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

// Finite double in [min, max].
// Shortest text that parses back to exactly v ("0.5", "1e+20").
inline std::string shortest_double(double v) {
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc{} ? std::string(buf, ptr) : std::string("?");
}

// Finite double in [min, max]; same error codes as parse_integer.
inline Result<double> parse_finite(std::string_view text, double min, double max) {
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(v))
    return fail("not_a_number", "'" + std::string(text) + "' is not a finite number");
  if (v < min || v > max)
    return fail("out_of_range", "'" + std::string(text) + "' is out of range [" +
                                    shortest_double(min) + ", " + shortest_double(max) + "]");
  return v;
}

}  // namespace meshd
