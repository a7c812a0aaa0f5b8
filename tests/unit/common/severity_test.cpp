#include "meshd/common/severity.hpp"

#include <gtest/gtest.h>

namespace meshd {
namespace {

TEST(Severity, ParsesEveryNameInAnyCaseAndPrintsItBack) {
  for (auto s :
       {Severity::info, Severity::low, Severity::medium, Severity::high, Severity::critical}) {
    auto parsed = parse_severity(to_string(s));
    ASSERT_TRUE(parsed) << to_string(s);
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(parse_severity("HIGH").value(), Severity::high);
}

TEST(Severity, RejectsUnknownNamesNamingTheInput) {
  auto r = parse_severity("severe");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "bad_severity");
  EXPECT_NE(r.error().message.find("'severe'"), std::string::npos);
}

TEST(Severity, IsOrderedByHowBadItIs) {
  EXPECT_LT(Severity::info, Severity::low);
  EXPECT_LT(Severity::low, Severity::medium);
  EXPECT_LT(Severity::high, Severity::critical);
}

}  // namespace
}  // namespace meshd
