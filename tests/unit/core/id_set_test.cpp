// The flat id set and the two-generation seen-set used for dedup.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "meshd/core/detail/id_set.hpp"

namespace meshd::core::detail {
namespace {

EventId id_of(std::uint64_t v) {
  EventId id{};
  // Low-entropy hash bytes on purpose: ids share home slots and probe runs get long.
  const std::uint64_t h = (v % 1024) * 0x9e3779b97f4a7c15ULL;
  for (int b = 0; b < 8; ++b)
    id[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(h >> (8 * b));
  for (int b = 0; b < 8; ++b)
    id[static_cast<std::size_t>(8 + b)] = static_cast<std::uint8_t>(v >> (8 * b));
  return id;
}

TEST(FlatIdSet, MatchesAReferenceSetUnderRandomInsertsAndErases) {
  FlatIdSet s;
  std::set<std::uint64_t> ref;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200'000; ++i) {
    const std::uint64_t v = rng() % 5000;
    if (rng() % 3 == 0) {
      EXPECT_EQ(s.erase(id_of(v)), ref.erase(v) == 1);
    } else {
      EXPECT_EQ(s.insert(id_of(v)), ref.insert(v).second);
    }
    ASSERT_EQ(s.size(), ref.size());
  }
  for (std::uint64_t v = 0; v < 5000; ++v) EXPECT_EQ(s.contains(id_of(v)), ref.count(v) == 1) << v;
}

TEST(FlatIdSet, AllZeroIdIsAnOrdinaryMember) {
  FlatIdSet s;
  EXPECT_FALSE(s.contains(EventId{}));
  EXPECT_TRUE(s.insert(EventId{}));
  EXPECT_FALSE(s.insert(EventId{}));
  EXPECT_TRUE(s.contains(EventId{}));
  EXPECT_EQ(s.size(), 1u);
  EXPECT_TRUE(s.erase(EventId{}));
  EXPECT_FALSE(s.contains(EventId{}));
}

TEST(FlatIdSet, KeepsSixteenBytesPerId) {
  FlatIdSet s;
  for (std::uint64_t v = 0; v < 1000; ++v) ASSERT_TRUE(s.insert(id_of(v)));
  // 1000 ids at 50-75% load (grown by half from 64 slots: 1639 slots) of 16 bytes.
  EXPECT_EQ(s.memory_bytes(), 1639u * 16u);
  EXPECT_LE(s.memory_bytes(), 1000u * 16u * 2);
  // Ids are hashes: two that agree on their first 16 bytes are taken as the same event.
  EventId tail = id_of(5);
  tail[31] ^= 0xff;
  EXPECT_TRUE(s.contains(tail));
  EventId head = id_of(5);
  head[15] ^= 0xff;
  EXPECT_FALSE(s.contains(head));
}

TEST(SeenSet, ForgetsAfterTheTtlAndIsBoundedByCapacity) {
  SeenSet s(1000, 10'000);
  EXPECT_TRUE(s.insert(id_of(1), 0));
  EXPECT_FALSE(s.insert(id_of(1), 1));
  s.expire(4'999);
  EXPECT_TRUE(s.contains(id_of(1)));
  s.expire(5'000);  // rotated once: still remembered (previous generation)
  EXPECT_TRUE(s.contains(id_of(1)));
  s.expire(10'000);  // rotated twice: forgotten
  EXPECT_FALSE(s.contains(id_of(1)));
  EXPECT_EQ(s.next_rotation(), SeenSet::kNever);

  SeenSet small(100, 1'000'000);
  for (std::uint64_t v = 0; v < 1000; ++v) small.insert(id_of(v), 0);
  EXPECT_LE(small.size(), 100u);
  EXPECT_TRUE(small.contains(id_of(999)));
  EXPECT_FALSE(small.contains(id_of(0)));
}

}  // namespace
}  // namespace meshd::core::detail
