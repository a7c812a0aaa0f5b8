// Addresses as 128-bit integers, so that prefixes of either family can be ordered, ranged
// and compared with plain integer arithmetic (LPM tables, interval sets, range queries).
// IPv4 addresses occupy the low 32 bits; the family always travels alongside.
#pragma once

#include <cstdint>

#include "trust/prefix.hpp"

namespace meshd::sensor {

using Addr128 = unsigned __int128;

inline int family_bits(trust::Family f) {
  return f == trust::Family::v4 ? 32 : 128;
}

// Highest address of the family: 255.255.255.255 or ffff:...:ffff.
inline Addr128 family_max(trust::Family f) {
  return f == trust::Family::v4 ? Addr128{0xffffffffu} : ~Addr128{0};
}

// The prefix's first address (host bits are zero by Prefix's invariant).
inline Addr128 to_addr(const trust::Prefix& p) {
  Addr128 v = 0;
  const int bytes = family_bits(p.family) / 8;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p.addr[i];
  return v;
}

// Mask with the top `len` bits of the family set.
inline Addr128 net_mask(trust::Family f, int len) {
  const int bits = family_bits(f);
  if (len <= 0) return 0;
  const Addr128 all = family_max(f);
  if (len >= bits) return all;
  return all & ~((Addr128{1} << (bits - len)) - 1);
}

// Last address inside the prefix.
inline Addr128 last_addr(const trust::Prefix& p) {
  return to_addr(p) | (family_max(p.family) & ~net_mask(p.family, p.len));
}

inline trust::Prefix from_addr(trust::Family f, Addr128 v, int len) {
  trust::Prefix p;
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

}  // namespace meshd::sensor
