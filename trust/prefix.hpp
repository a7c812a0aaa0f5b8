// IPv4 / IPv6 CIDR prefixes: the unit every claim, block and protected range is expressed in.
// Pure value type, no OS dependency (own parser: trust/ must not include socket headers).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"

namespace meshd::trust {

enum class Family : std::uint8_t { v4 = 4, v6 = 6 };

struct Prefix {
  Family family = Family::v4;
  std::uint8_t len = 0;  // prefix length in bits: 0..32 (v4) or 0..128 (v6)
  // Address bytes in network order; v4 uses bytes [0,4). Host bits are always zero, so two
  // equal prefixes compare equal byte for byte.
  std::array<std::uint8_t, 16> addr{};

  // Parses "a.b.c.d", "a.b.c.d/n", "v6addr", "v6addr/n". A bare address is a host prefix.
  // Strict: host bits set ("10.0.0.1/8") is an error naming the network form, because a
  // security tool must not silently widen or narrow what an operator typed.
  static Result<Prefix> parse(std::string_view text);
  // Same, but masks host bits instead of failing (threat feeds are often sloppy).
  static Result<Prefix> parse_masking(std::string_view text);
  static Prefix v4(std::uint32_t host_order_addr, std::uint8_t len);

  int max_len() const { return family == Family::v4 ? 32 : 128; }
  bool is_host() const { return len == max_len(); }
  // Number of host bits: 0 for a single address, 32 for 0.0.0.0/0. Used by the cost model.
  int host_bits() const { return max_len() - len; }
  // True if every address of `other` is inside this prefix (same family only).
  bool contains(const Prefix& other) const;
  // True if the two prefixes share at least one address.
  bool overlaps(const Prefix& other) const { return contains(other) || other.contains(*this); }
  std::string to_string() const;

  auto operator<=>(const Prefix&) const = default;
  bool operator==(const Prefix&) const = default;
};

struct PrefixHash {
  std::size_t operator()(const Prefix& p) const noexcept;
};

}  // namespace meshd::trust
