// Deterministic fuzz smoke run for any compiler: seeds, their truncations, bit flips, byte
// splices and pure random inputs through fuzz_one(). Fixed PRNG seed, so a crash reproduces.
#include <gtest/gtest.h>

#include <random>

#include "proto/frame.hpp"
#include "tests/fuzz/proto/fuzz_body.hpp"

namespace meshd::proto::fuzz {
namespace {

TEST(ProtoFuzzSmoke, SeedsAndTheirTruncations) {
  for (const auto& s : seed_inputs()) {
    for (std::size_t len = 0; len < s.size(); ++len) fuzz_one(s.data(), len);
    // The whole seed parses and its signed envelopes verify.
    auto whole = fuzz_one(s.data(), s.size());
    EXPECT_GT(whole.frames, 0u);
  }
}

TEST(ProtoFuzzSmoke, MutatedSeedsAndRandomInputs) {
  std::mt19937_64 rng(20240501);
  auto seeds = seed_inputs();
  Reached total;
  std::size_t accepted_mutants = 0;
  for (int i = 0; i < 6000; ++i) {
    std::vector<std::uint8_t> in;
    switch (rng() % 4) {
      case 0: {  // random bytes
        in.resize(rng() % 512);
        for (auto& b : in) b = static_cast<std::uint8_t>(rng());
        break;
      }
      case 1: {  // bit flips in a seed
        in = seeds[rng() % seeds.size()];
        for (int k = 0, n = 1 + static_cast<int>(rng() % 4); k < n && !in.empty(); ++k) {
          in[rng() % in.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        }
        break;
      }
      case 2: {  // overwrite random bytes of a seed (hits length prefixes and varints)
        in = seeds[rng() % seeds.size()];
        for (int k = 0, n = 1 + static_cast<int>(rng() % 8); k < n && !in.empty(); ++k) {
          in[rng() % in.size()] = static_cast<std::uint8_t>(rng());
        }
        break;
      }
      default: {  // splice two seeds at random points
        const auto& a = seeds[rng() % seeds.size()];
        const auto& b = seeds[rng() % seeds.size()];
        std::size_t ca = rng() % (a.size() + 1);
        std::size_t cb = rng() % (b.size() + 1);
        in.assign(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(ca));
        in.insert(in.end(), b.begin() + static_cast<std::ptrdiff_t>(cb), b.end());
      }
    }
    auto r = fuzz_one(in.data(), in.size());
    total.frames += r.frames;
    total.verified += r.verified;
    total.rejected += r.rejected;
    if (r.verified > 0 && in.size() > 0) ++accepted_mutants;
  }
  // The run reaches both sides: many mutants are rejected, and many still parse and carry
  // envelopes that verify (a codec or verifier that rejected everything would fail here).
  EXPECT_GT(total.rejected, 1000u);
  EXPECT_GT(total.frames, 1000u);
  EXPECT_GT(total.verified, 200u);
  EXPECT_GT(accepted_mutants, 100u);
}

TEST(ProtoFuzzSmoke, ValidSeedsStillDecode) {
  // Guards the smoke run against silently testing only the rejection path.
  int frames = 0;
  for (const auto& s : seed_inputs()) {
    FrameDecoder d;
    d.feed(s);
    for (;;) {
      auto r = d.next();
      ASSERT_TRUE(r);
      if (!r->has_value()) break;
      ASSERT_TRUE(parse_frame(**r));
      ++frames;
    }
  }
  EXPECT_GE(frames, 8);
}

}  // namespace
}  // namespace meshd::proto::fuzz
