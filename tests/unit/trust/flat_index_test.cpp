// FlatIndex (the trust engine's 4-byte-a-slot index): random inserts, erases and lookups
// against std::unordered_map, through many growths and tombstone rehashes, with keys whose
// hashes collide in their low or high bits.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <vector>

#include "trust/detail/flat_index.hpp"

namespace meshd::trust::detail {
namespace {

struct Table {
  std::vector<std::uint64_t> keys;  // record idx -> key
  FlatIndex index;
  std::uint64_t (*hash)(std::uint64_t);

  std::uint32_t find(std::uint64_t key) const {
    return index.find(hash(key), [&](std::uint32_t i) { return keys[i] == key; });
  }
  void insert(std::uint64_t key, std::uint32_t idx) {
    index.insert(hash(key), idx, [&](std::uint32_t i) { return hash(keys[i]); });
  }
};

void run(std::uint64_t (*hash)(std::uint64_t), std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  Table t{{}, {}, hash};
  std::unordered_map<std::uint64_t, std::uint32_t> ref;
  std::vector<std::uint32_t> free_idx;
  for (int step = 0; step < 200000; ++step) {
    const std::uint64_t key = rng() % 60000;
    const int op = static_cast<int>(rng() % 3);
    auto it = ref.find(key);
    if (op < 2 && it == ref.end()) {  // insert
      std::uint32_t idx;
      if (!free_idx.empty()) {
        idx = free_idx.back();
        free_idx.pop_back();
        t.keys[idx] = key;
      } else {
        idx = static_cast<std::uint32_t>(t.keys.size());
        t.keys.push_back(key);
      }
      t.insert(key, idx);
      ref[key] = idx;
    } else if (op == 2 && it != ref.end()) {  // erase
      ASSERT_TRUE(t.index.erase(hash(key), it->second));
      free_idx.push_back(it->second);
      t.keys[it->second] = ~0ull;
      ref.erase(it);
    }
    ASSERT_EQ(t.index.size(), ref.size());
    const std::uint64_t probe = rng() % 60000;
    auto r = ref.find(probe);
    ASSERT_EQ(t.find(probe), r == ref.end() ? FlatIndex::kNone : r->second) << "step " << step;
  }
  // 0.5-0.7 entries per slot after the last growth (tombstones included in the 0.7).
  EXPECT_LE(t.index.bytes(), (ref.size() * 2 + 64) * sizeof(std::uint32_t) * 3);
  for (const auto& [key, idx] : ref) ASSERT_EQ(t.find(key), idx);
}

TEST(FlatIndex, MatchesUnorderedMapWithMixedHashes) {
  run([](std::uint64_t k) { return mix64(k); }, 1);
}

TEST(FlatIndex, MatchesUnorderedMapWithLowBitsOnly) {
  run([](std::uint64_t k) { return k; }, 2);  // like plain FNV: high bits mostly zero
}

TEST(FlatIndex, MatchesUnorderedMapWithCollisions) {
  run([](std::uint64_t k) { return k >> 4; }, 3);  // 16 keys per hash: long probe runs
}

TEST(FlatIndex, GrowsToTwiceTheLiveEntries) {
  Table t{{}, {}, [](std::uint64_t k) { return mix64(k); }};
  for (std::uint32_t i = 0; i < 100000; ++i) {
    t.keys.push_back(i);
    t.insert(i, i);
  }
  // 100k entries: between 100k/0.7 and 2 x 100k slots (a power-of-two table had 262,144).
  EXPECT_GE(t.index.bytes(), 142857u * 4);
  EXPECT_LE(t.index.bytes(), 200002u * 4);
}

}  // namespace
}  // namespace meshd::trust::detail
