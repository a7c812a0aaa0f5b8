// sensor.crowdsec: the keys of issue [L] (url, api_key_file, poll_ms) and the extra ones,
// nested as documented, with errors that name the key.
#include <gtest/gtest.h>

#include "meshd/app/config.hpp"

namespace meshd::app {
namespace {

std::string error_of(std::string_view yaml) {
  auto c = parse_config(yaml, "test.yaml");
  EXPECT_FALSE(c.has_value()) << yaml;
  return c ? "" : c.error().message;
}

TEST(CrowdsecConfig, OffByDefault) {
  auto c = parse_config("", "empty.yaml");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->sensor.crowdsec.url.empty());
  EXPECT_EQ(c->sensor.crowdsec.poll_ms, 1000);
}

TEST(CrowdsecConfig, ReadsTheNestedKeys) {
  auto c = parse_config(R"(
sensor:
  crowdsec:
    url: http://127.0.0.1:8080
    api_key_file: /etc/meshd/crowdsec.key
    poll_ms: 250
    confidence_crowdsec: 0.7
    confidence_cscli: 0.95
    confidence_cscli_import: 0.85
    max_claims_per_min: 50
    timeout_ms: 3000
)",
                        "t.yaml");
  ASSERT_TRUE(c) << c.error().message;
  const auto& cs = c->sensor.crowdsec;
  EXPECT_EQ(cs.url, "http://127.0.0.1:8080");
  EXPECT_EQ(cs.api_key_file, "/etc/meshd/crowdsec.key");
  EXPECT_EQ(cs.poll_ms, 250);
  EXPECT_DOUBLE_EQ(cs.confidence_crowdsec, 0.7);
  EXPECT_DOUBLE_EQ(cs.confidence_cscli, 0.95);
  EXPECT_DOUBLE_EQ(cs.confidence_cscli_import, 0.85);
  EXPECT_EQ(cs.max_claims_per_min, 50);
  EXPECT_EQ(cs.timeout_ms, 3000);
}

TEST(CrowdsecConfig, BadValuesNameTheKey) {
  EXPECT_NE(error_of("sensor: {crowdsec: {url: \"https://lapi:8080\"}}")
                .find("sensor.crowdsec.url: 'https://lapi:8080' is not http://HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error_of("sensor: {crowdsec: {poll_ms: 10}}").find("sensor.crowdsec.poll_ms"),
            std::string::npos);
  EXPECT_NE(error_of("sensor: {crowdsec: {confidence_cscli: 1.5}}")
                .find("sensor.crowdsec.confidence_cscli: must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(
      error_of("sensor: {crowdsec: {poll_mss: 100}}").find("sensor.crowdsec.poll_mss: unknown key"),
      std::string::npos);
  // Above half the fleet's overrun limit, the fleet would quarantine this node.
  EXPECT_NE(error_of("sensor: {crowdsec: {max_claims_per_min: 201}}")
                .find("sensor.crowdsec.max_claims_per_min"),
            std::string::npos);
  EXPECT_TRUE(parse_config("sensor: {crowdsec: {max_claims_per_min: 200}}", "t"));
  EXPECT_FALSE(parse_config(
      "sensor: {crowdsec: {max_claims_per_min: 200}}\npolicy: {overrun_max_claims: 300}", "t"));
}

}  // namespace
}  // namespace meshd::app
