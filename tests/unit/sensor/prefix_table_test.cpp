// PrefixTable (the BPF enforcer's mirror of installed prefixes) against std::map: random
// adds, erases and lookups over a small key space, so that probe runs collide, wrap around
// the end of the table and are shifted back by erases, across several growths.
#include "sensor/prefix_table.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace meshd::sensor {
namespace {

Prefix key(std::uint32_t i) {
  if (i % 7 == 0) {  // some IPv6 keys among the IPv4 ones
    Prefix p;
    p.family = Family::v6;
    p.len = 64;
    p.addr[0] = 0x20;
    p.addr[1] = 0x01;
    p.addr[6] = static_cast<std::uint8_t>(i >> 8);
    p.addr[7] = static_cast<std::uint8_t>(i);
    return p;
  }
  return Prefix::v4(0x0a000000u + i, 32);
}

TEST(PrefixTable, MatchesAMapUnderRandomAddEraseFind) {
  PrefixTable t;
  std::map<Prefix, std::uint8_t> ref;
  std::mt19937 rng(7);
  for (int step = 0; step < 200000; ++step) {
    const std::uint32_t i = rng() % 5000;
    const Prefix p = key(i);
    switch (rng() % 3) {
      case 0: {
        const auto bits = static_cast<std::uint8_t>(1 + rng() % 3);
        t.add(p, bits);
        ref[p] |= bits;
        break;
      }
      case 1: {
        auto it = ref.find(p);
        const std::uint8_t want = it == ref.end() ? 0 : it->second;
        if (it != ref.end()) ref.erase(it);
        ASSERT_EQ(t.erase(p), want) << p.to_string() << " at step " << step;
        break;
      }
      default: {
        auto it = ref.find(p);
        ASSERT_EQ(t.find(p), it == ref.end() ? 0 : it->second) << p.to_string();
      }
    }
    ASSERT_EQ(t.size(), ref.size());
  }
  std::map<Prefix, std::uint8_t> seen;
  t.for_each([&](const Prefix& p, std::uint8_t flags) { seen[p] = flags; });
  EXPECT_EQ(seen, ref);
  for (const auto& [p, flags] : ref) EXPECT_EQ(t.find(p), flags);
}

TEST(PrefixTable, GrowsAndEmptiesWithinItsLoadBound) {
  PrefixTable t;
  EXPECT_EQ(t.find(key(1)), 0);
  EXPECT_EQ(t.erase(key(1)), 0);
  for (std::uint32_t i = 0; i < 100000; ++i) t.add(Prefix::v4(0xc0000000u + i, 32), 2);
  EXPECT_EQ(t.size(), 100000u);
  // At most 80 % full, at least ~53 % after a growth: <= 19 / 0.53 bytes per entry.
  EXPECT_LE(t.memory_bytes(), 100000u * 36);
  EXPECT_GE(t.memory_bytes(), 100000u * 19 * 5 / 4);
  for (std::uint32_t i = 0; i < 100000; ++i) ASSERT_EQ(t.erase(Prefix::v4(0xc0000000u + i, 32)), 2);
  EXPECT_TRUE(t.empty());
  int left = 0;
  t.for_each([&](const Prefix&, std::uint8_t) { ++left; });
  EXPECT_EQ(left, 0);
}

}  // namespace
}  // namespace meshd::sensor
