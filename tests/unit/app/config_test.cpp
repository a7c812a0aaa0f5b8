#include "meshd/app/config.hpp"

#include <gtest/gtest.h>

namespace meshd::app {
namespace {

std::string error_of(std::string_view yaml) {
  auto c = parse_config(yaml, "test.yaml");
  EXPECT_FALSE(c.has_value()) << yaml;
  return c ? "" : c.error().message;
}

TEST(Config, EmptyFileIsTheStandaloneDefault) {
  auto c = parse_config("", "empty.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->enforcement.backend, "auto");
  EXPECT_TRUE(c->mesh.peers.empty());
  EXPECT_EQ(c->enforcement.pin_path, "/sys/fs/bpf/meshd");
}

TEST(Config, ReadsEveryDocumentedKey) {
  auto c = parse_config(R"(
node: {name: n1, key: /k, cert: /c, ca: /ca, data_dir: /d}
mesh:
  listen: 10.0.0.1:7000
  peers: ["10.0.0.2:7000", "dns:meshd-peers.meshd-system.svc:7946"]
control: {socket: /tmp/s.sock}
metrics: {listen: "127.0.0.1:9999"}
enforcement: {backend: nftables, interfaces: [eth0, eth1], cgroup: /sys/fs/cgroup, pin_path: /sys/fs/bpf/n1}
protected: [10.0.0.0/8, "2001:db8::/32"]
policy: {s_cap: 0.5, ttl_single_ms: 60000, mode: "quorum:3"}
log: {format: json, level: debug}
)",
                        "t.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->node.name, "n1");
  EXPECT_EQ(c->mesh.peers.size(), 2u);
  EXPECT_EQ(c->control_socket, "/tmp/s.sock");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9999");
  EXPECT_EQ(c->enforcement.interfaces.size(), 2u);
  ASSERT_EQ(c->protected_prefixes.size(), 2u);
  EXPECT_EQ(c->protected_prefixes[1].to_string(), "2001:db8::/32");
  EXPECT_DOUBLE_EQ(c->policy.s_cap, 0.5);
  EXPECT_EQ(c->policy.ttl_single_ms, 60000);
  EXPECT_EQ(trust::policy_to_string(c->policy), "quorum:3");
  EXPECT_EQ(c->log_format, "json");
}

TEST(Config, ErrorsNameTheKeyAndTheReason) {
  EXPECT_NE(error_of("mesh: {listn: x}").find("mesh.listn: unknown key"), std::string::npos);
  EXPECT_NE(error_of("enforcement: {backend: ebpf}").find("enforcement.backend"),
            std::string::npos);
  EXPECT_NE(error_of("protected: [10.0.0.1/8]").find("protected: item 1"), std::string::npos);
  EXPECT_NE(error_of("mesh: {target_peers: many}").find("mesh.target_peers: expected an integer"),
            std::string::npos);
  EXPECT_NE(error_of("mesh: {peers: [nohost]}").find("mesh.peers"), std::string::npos);
  EXPECT_NE(error_of("policy: {s_cap: 2}").find("policy.s_cap"), std::string::npos);
  EXPECT_NE(error_of("policy: {no_such: 1}").find("policy.no_such"), std::string::npos);
  EXPECT_NE(error_of("node: [a, b]").find("node"), std::string::npos);
  EXPECT_NE(error_of("mesh: {listen: \"a:b:c\"").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of("log: {format: xml}").find("test.yaml: log.format"), std::string::npos);
}

TEST(Config, DefaultConfigListsEveryKeyAndParsesBackToTheDefaults) {
  std::string text = default_config_yaml();
  for (const auto& k : config_keys()) {
    auto leaf = k.key.substr(k.key.find('.') == std::string_view::npos ? 0 : k.key.find('.') + 1);
    EXPECT_NE(text.find(std::string(leaf) + ":"), std::string::npos) << k.key;
  }
  for (const auto& p : trust::param_table())
    EXPECT_NE(text.find("  " + std::string(p.name) + ":"), std::string::npos) << p.name;
  auto c = parse_config(text, "default");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(default_config_yaml(), text);
  EXPECT_EQ(c->mesh.listen, AppConfig{}.mesh.listen);
  EXPECT_EQ(trust::policy_to_string(c->policy), "trust");
}

}  // namespace
}  // namespace meshd::app
