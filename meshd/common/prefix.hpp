// IPv4 / IPv6 CIDR prefixes: the unit every claim, block and protected range is expressed in,
// and the prefix arithmetic (addresses as 128-bit integers) that LPM tables, interval sets and
// range queries need. Pure value types, no OS dependency (own parser: the sans-I/O core must
// not include socket headers).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "meshd/common/result.hpp"

namespace meshd {

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

// Addresses as 128-bit integers, so that prefixes of either family can be ordered, ranged
// and compared with plain integer arithmetic (LPM tables, interval sets, range queries).
// IPv4 addresses occupy the low 32 bits; the family always travels alongside.
using Addr128 = unsigned __int128;

inline int family_bits(Family f) {
  return f == Family::v4 ? 32 : 128;
}

// Highest address of the family: 255.255.255.255 or ffff:...:ffff.
inline Addr128 family_max(Family f) {
  return f == Family::v4 ? Addr128{0xffffffffu} : ~Addr128{0};
}

// The prefix's first address (host bits are zero by Prefix's invariant).
inline Addr128 to_addr(const Prefix& p) {
  Addr128 v = 0;
  const int bytes = family_bits(p.family) / 8;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p.addr[i];
  return v;
}

// Mask with the top `len` bits of the family set.
inline Addr128 net_mask(Family f, int len) {
  const int bits = family_bits(f);
  if (len <= 0) return 0;
  const Addr128 all = family_max(f);
  if (len >= bits) return all;
  return all & ~((Addr128{1} << (bits - len)) - 1);
}

// Last address inside the prefix.
inline Addr128 last_addr(const Prefix& p) {
  return to_addr(p) | (family_max(p.family) & ~net_mask(p.family, p.len));
}

inline Prefix from_addr(Family f, Addr128 v, int len) {
  Prefix p;
  p.family = f;
  p.len = static_cast<std::uint8_t>(len);
  v &= net_mask(f, len);
  const int bytes = family_bits(f) / 8;
  for (int i = bytes - 1; i >= 0; --i) {
    p.addr[i] = static_cast<std::uint8_t>(v & 0xff);
    v >>= 8;
  }
  return p;
}

}  // namespace meshd
