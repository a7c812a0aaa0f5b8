// meshctl's argument parsers (meshd/ctl/client.hpp).
#include <gtest/gtest.h>

#include "meshd/ctl/client.hpp"

namespace meshd::ctl {
namespace {

TEST(ParseDuration, UnitsAndErrors) {
  EXPECT_EQ(parse_duration("500ms").value(), 500);
  EXPECT_EQ(parse_duration("30s").value(), 30'000);
  EXPECT_EQ(parse_duration("10m").value(), 600'000);
  EXPECT_EQ(parse_duration("2h").value(), 7'200'000);
  EXPECT_EQ(parse_duration("1d").value(), 86'400'000);
  for (const char* bad : {"", "s", "0s", "-5m", "10", "10x", "1.5h", " 1h", "1h "})
    EXPECT_EQ(parse_duration(bad).error().code, "bad_duration") << bad;
}

// Found by fuzz_meshctl_args (UBSan): "9789315447832d" overflowed value * scale.
TEST(ParseDuration, OverflowIsAnErrorNotUndefinedBehaviour) {
  auto d = parse_duration("9789315447832d");
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().message, "'9789315447832d' is too long a duration");
  EXPECT_EQ(parse_duration("9223372036854775807ms").value(), 9223372036854775807LL);
  EXPECT_FALSE(parse_duration("9223372036854776s"));
  EXPECT_EQ(parse_duration("106751991167d").value(), 106751991167LL * 86'400'000);
}

}  // namespace
}  // namespace meshd::ctl
