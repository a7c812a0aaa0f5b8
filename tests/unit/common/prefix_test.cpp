#include "meshd/common/prefix.hpp"

#include <gtest/gtest.h>

namespace meshd {
namespace {

Prefix P(const char* s) {
  auto p = Prefix::parse(s);
  EXPECT_TRUE(p.has_value()) << s << ": " << (p ? "" : p.error().message);
  return p.value_or(Prefix{});
}

TEST(Prefix, ParsesAndPrintsV4) {
  EXPECT_EQ(P("10.1.2.3").to_string(), "10.1.2.3");
  EXPECT_EQ(P("10.1.0.0/16").to_string(), "10.1.0.0/16");
  EXPECT_EQ(P("0.0.0.0/0").host_bits(), 32);
  EXPECT_TRUE(P("10.1.2.3").is_host());
}

TEST(Prefix, ParsesAndPrintsV6Canonically) {
  EXPECT_EQ(P("2001:0db8:0000:0000:0000:0000:0000:0001").to_string(), "2001:db8::1");
  EXPECT_EQ(P("::").to_string(), "::");
  EXPECT_EQ(P("::1").to_string(), "::1");
  EXPECT_EQ(P("fe80::/10").to_string(), "fe80::/10");
  EXPECT_EQ(P("::ffff:192.0.2.1").to_string(), "::ffff:c000:201");
  EXPECT_EQ(P("1:0:0:2:0:0:0:3").to_string(), "1:0:0:2::3");
}

TEST(Prefix, RejectsGarbageWithReason) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4/33",
                          "1.2.3.4/", "::1::2", "1:2:3:4:5:6:7:8:9", "12345::", "g::", "1.2.3.4/-1",
                          "1:2:3:4:5:6:7:8/129", "1:", "a.b.c.d"}) {
    auto p = Prefix::parse(bad);
    EXPECT_FALSE(p.has_value()) << bad;
    if (!p) {
      EXPECT_EQ(p.error().code, "bad_prefix");
    }
  }
}

TEST(Prefix, HostBitsSetIsAnErrorNamingTheNetworkUnlessMasking) {
  auto p = Prefix::parse("10.1.2.3/16");
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("10.1.0.0/16"), std::string::npos);
  EXPECT_EQ(Prefix::parse_masking("10.1.2.3/16")->to_string(), "10.1.0.0/16");
}

TEST(Prefix, ContainmentAndOverlap) {
  EXPECT_TRUE(P("10.0.0.0/8").contains(P("10.1.2.3")));
  EXPECT_FALSE(P("10.1.2.3").contains(P("10.0.0.0/8")));
  EXPECT_TRUE(P("10.1.2.3").overlaps(P("10.0.0.0/8")));
  EXPECT_FALSE(P("10.0.0.0/9").overlaps(P("10.128.0.0/9")));
  EXPECT_TRUE(P("0.0.0.0/0").contains(P("255.255.255.255")));
  EXPECT_FALSE(P("0.0.0.0/0").contains(P("::1")));  // families never mix
  EXPECT_TRUE(P("2001:db8::/32").contains(P("2001:db8:ffff::1")));
  EXPECT_FALSE(P("2001:db8::/33").contains(P("2001:db8:8000::1")));
}

}  // namespace
}  // namespace meshd
