// Which traffic a claim or an enforced block covers.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace meshd {

// Bit flags (egress = traffic to the prefix, ingress = traffic from it), so that the same
// values can travel in the wire format and in the BPF map value flags.
enum class Direction : std::uint8_t { egress = 1, ingress = 2, both = 3 };

constexpr bool covers_egress(Direction d) {
  return static_cast<std::uint8_t>(d) & 1;
}
constexpr bool covers_ingress(Direction d) {
  return static_cast<std::uint8_t>(d) & 2;
}

constexpr std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::egress:
      return "egress";
    case Direction::ingress:
      return "ingress";
    case Direction::both:
      return "both";
  }
  return "invalid";
}

constexpr std::optional<Direction> parse_direction(std::string_view s) {
  if (s == "egress") return Direction::egress;
  if (s == "ingress") return Direction::ingress;
  if (s == "both") return Direction::both;
  return std::nullopt;
}

}  // namespace meshd
