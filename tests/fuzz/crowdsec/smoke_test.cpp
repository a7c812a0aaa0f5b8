// Deterministic fuzz smoke run of the CrowdSec stream parser for any compiler: the seeds,
// their truncations, byte mutations and splices, with a fixed PRNG seed.
#include <gtest/gtest.h>

#include <random>

#include "tests/fuzz/crowdsec/fuzz_body.hpp"

namespace meshd::sensor::fuzz {
namespace {

bool run(const std::string& s) {
  return fuzz_one(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

TEST(CrowdsecFuzzSmoke, SeedsParseAndTheirTruncationsDoNotCrash) {
  for (const auto& s : seed_inputs()) {
    EXPECT_TRUE(run(s)) << s;  // guards against testing only the rejection path
    for (std::size_t len = 0; len < s.size(); ++len) run(s.substr(0, len));
  }
}

TEST(CrowdsecFuzzSmoke, MutatedAndSplicedSeeds) {
  std::mt19937_64 rng(20261206);
  const auto seeds = seed_inputs();
  const std::string alphabet = "{}[]\":,-.0123456789abcdefhmsuIRpnrgeatwl/ \\";
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string in = seeds[rng() % seeds.size()];
    switch (rng() % 3) {
      case 0:  // replace bytes with JSON-ish characters
        for (int k = 0, n = 1 + static_cast<int>(rng() % 6); k < n; ++k)
          in[rng() % in.size()] = alphabet[rng() % alphabet.size()];
        break;
      case 1:  // random bytes
        for (int k = 0, n = 1 + static_cast<int>(rng() % 6); k < n; ++k)
          in[rng() % in.size()] = static_cast<char>(rng());
        break;
      default: {  // splice
        const auto& b = seeds[rng() % seeds.size()];
        in = in.substr(0, rng() % (in.size() + 1)) + b.substr(rng() % (b.size() + 1));
      }
    }
    parsed += run(in) ? 1 : 0;
  }
  EXPECT_GT(parsed, 100);  // many mutants still parse, so the table paths ran too
}

}  // namespace
}  // namespace meshd::sensor::fuzz
