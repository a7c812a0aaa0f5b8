#include "meshd/common/token_bucket.hpp"

#include <gtest/gtest.h>

namespace meshd {
namespace {

constexpr TokenRate kTwoPerTickBurstFour{.per_tick = 2, .burst = 4};

TEST(TokenBucket, StartsFullAtFirstUseThenRefusesUntilRefilled) {
  TokenBucket b;
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(b.try_take(kTwoPerTickBurstFour, 1, 100)) << i;
  EXPECT_FALSE(b.try_take(kTwoPerTickBurstFour, 1, 100));
  EXPECT_TRUE(b.try_take(kTwoPerTickBurstFour, 2, 101));  // one tick = two tokens
  EXPECT_FALSE(b.can_take(kTwoPerTickBurstFour, 1, 101));
}

TEST(TokenBucket, NeverHoldsMoreThanTheBurst) {
  TokenBucket b;
  EXPECT_TRUE(b.try_take(kTwoPerTickBurstFour, 4, 0));
  EXPECT_TRUE(b.can_take(kTwoPerTickBurstFour, 4, 1'000'000));
  EXPECT_FALSE(b.can_take(kTwoPerTickBurstFour, 5, 2'000'000));
  EXPECT_DOUBLE_EQ(b.tokens(), 4);
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket b;
  EXPECT_TRUE(b.try_take(kTwoPerTickBurstFour, 4, 50));
  EXPECT_FALSE(b.can_take(kTwoPerTickBurstFour, 1, 10));
  EXPECT_FALSE(b.can_take(kTwoPerTickBurstFour, 1, 50));
}

TEST(TokenBucket, CanTakeTakesNothing) {
  TokenBucket b;
  EXPECT_TRUE(b.can_take(kTwoPerTickBurstFour, 4, 0));
  EXPECT_TRUE(b.can_take(kTwoPerTickBurstFour, 4, 0));
  EXPECT_DOUBLE_EQ(b.tokens(), 4);
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
  TokenBucket b;
  const TokenRate unlimited{};
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.try_take(unlimited, 1e9, 0));
}

TEST(TokenBucket, ReadyAtIsTheFirstTickWithEnoughTokens) {
  const TokenRate half_per_tick{.per_tick = 0.5, .burst = 2};
  TokenBucket b;
  EXPECT_TRUE(b.try_take(half_per_tick, 2, 1000));
  const std::int64_t ready = b.ready_at(half_per_tick, 1);
  EXPECT_EQ(ready, 1003);  // two ticks give the token; +1 so the deadline is after it
  EXPECT_FALSE(b.can_take(half_per_tick, 1, 1001));
  EXPECT_TRUE(b.can_take(half_per_tick, 1, ready));
}

TEST(TokenBucket, FillMakesItFullAgain) {
  TokenBucket b;
  EXPECT_TRUE(b.try_take(kTwoPerTickBurstFour, 4, 0));
  b.fill(kTwoPerTickBurstFour, 0);
  EXPECT_TRUE(b.try_take(kTwoPerTickBurstFour, 4, 0));
}

}  // namespace
}  // namespace meshd
