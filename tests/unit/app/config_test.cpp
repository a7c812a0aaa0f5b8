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
node: {name: n1, key: /k, cert: /c, ca: /ca, data_dir: /d, test_clock_offset_ms: -600000}
mesh:
  listen: 10.0.0.1:7000
  peers: ["10.0.0.2:7000", "dns:meshd-peers.meshd-system.svc:7946"]
  target_peers: 3
  max_peers: 9
  max_frame_bytes: 4096
  handshake_timeout_ms: 1500
  idle_timeout_ms: 20000
  dns_refresh_ms: 5000
  max_concurrent_dials: 2
  peer_exchange: false
  trim_surplus: false
  redirect_slots: 3
  max_learned_addresses: 64
  peer_rate_frames_per_s: 150.5
  origin_rate_per_min: 60
  origin_burst: 20
  revoked_serials: ["7", "18446744073709551615"]
control: {socket: /tmp/s.sock}
metrics: {listen: "127.0.0.1:9999", ui_token_file: /etc/meshd/ui.token}
enforcement: {backend: nftables, interfaces: [eth0, eth1], cgroup: /sys/fs/cgroup, pin_path: /sys/fs/bpf/n1, nft_table: t1}
sensor:
  enabled: false
  feeds: [/etc/meshd/drop.txt]
  feed_confidence: 0.75
  fanout_destinations: 40
  fanout_ports: 30
  fanout_window_ms: 10000
  usage_bucket_ms: 15000
  usage_buckets: 20
  bad_ports: [23, 2323]
  falco_listen: "127.0.0.1:2801"
  falco_secret_file: /etc/meshd/falco.secret
  crowdsec:
    url: http://127.0.0.1:8080
    api_key_file: /etc/meshd/cs.key
    poll_ms: 500
    timeout_ms: 2000
    confidence_crowdsec: 0.7
    confidence_cscli: 0.8
    confidence_cscli_import: 0.6
    max_claims_per_min: 50
protected: [10.0.0.0/8, "2001:db8::/32"]
policy: {s_cap: 0.5, ttl_single_ms: 60000, mode: "quorum:3"}
log: {format: json, level: debug}
)",
                        "t.yaml");
  ASSERT_TRUE(c) << c.error().message;
  // Every key of the table is set above to something other than its default: a key that is
  // documented but not read (or missing from this document) fails here.
  const AppConfig defaults;
  for (const auto& k : config_keys()) EXPECT_NE(k.get(*c), k.get(defaults)) << k.key;
  EXPECT_EQ(c->node.name, "n1");
  EXPECT_EQ(c->mesh.peers.size(), 2u);
  EXPECT_EQ(c->mesh.target_peers, 3);
  EXPECT_EQ(c->mesh.max_peers, 9);
  EXPECT_DOUBLE_EQ(c->mesh.peer_rate_frames_per_s, 150.5);
  EXPECT_EQ(c->mesh.revoked_serials, (std::vector<std::string>{"7", "18446744073709551615"}));
  EXPECT_EQ(c->control_socket, "/tmp/s.sock");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9999");
  EXPECT_EQ(c->enforcement.interfaces.size(), 2u);
  EXPECT_FALSE(c->sensor.enabled);
  EXPECT_EQ(c->sensor.feeds, std::vector<std::string>{"/etc/meshd/drop.txt"});
  EXPECT_DOUBLE_EQ(c->sensor.feed_confidence, 0.75);
  EXPECT_EQ(c->sensor.fanout_destinations, 40);
  EXPECT_EQ(c->sensor.fanout_ports, 30);
  EXPECT_EQ(c->sensor.fanout_window_ms, 10000);
  EXPECT_EQ(c->sensor.usage_bucket_ms, 15000);
  EXPECT_EQ(c->sensor.usage_buckets, 20);
  EXPECT_EQ(c->sensor.bad_ports, (std::vector<int>{23, 2323}));
  EXPECT_EQ(c->sensor.falco_listen, "127.0.0.1:2801");
  EXPECT_EQ(c->sensor.falco_secret_file, "/etc/meshd/falco.secret");
  ASSERT_EQ(c->protected_prefixes.size(), 2u);
  EXPECT_EQ(c->protected_prefixes[1].to_string(), "2001:db8::/32");
  EXPECT_DOUBLE_EQ(c->policy.s_cap, 0.5);
  EXPECT_EQ(c->policy.ttl_single_ms, 60000);
  EXPECT_EQ(trust::policy_to_string(c->policy), "quorum:3");
  EXPECT_EQ(c->log_format, "json");

  // And it prints back to YAML that reads to the same values.
  auto again = parse_config(config_yaml(*c), "printed");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(config_yaml(*again), config_yaml(*c));
  for (const auto& k : config_keys()) EXPECT_EQ(k.get(*again), k.get(*c)) << k.key;
}

// Regression: `mesh.listen: "1.2.3.4:99999999999999999999"` made `meshd --check-config` abort
// with an uncaught std::out_of_range from stoul (exit 134).
TEST(Config, ListenPortBeyondUlongIsAnErrorNotAnAbort) {
  auto e = error_of(R"(mesh: {listen: "1.2.3.4:99999999999999999999"})");
  EXPECT_NE(e.find("test.yaml: mesh.listen: '1.2.3.4:99999999999999999999': port "
                   "'99999999999999999999' is out of range [0, 65535]"),
            std::string::npos)
      << e;
  EXPECT_NE(error_of(R"(metrics: {listen: "127.0.0.1:65536"})").find("metrics.listen"),
            std::string::npos);
  EXPECT_NE(error_of(R"(sensor: {falco_listen: "127.0.0.1:-1", falco_secret_file: /s})")
                .find("sensor.falco_listen"),
            std::string::npos);
  EXPECT_NE(error_of(R"(mesh: {peers: ["a:18446744073709551616"]})").find("mesh.peers"),
            std::string::npos);
  EXPECT_NE(error_of(R"(mesh: {listen: "localhost:7946"})").find("is not an IP address"),
            std::string::npos);
}

// Regression: `mesh.revoked_serials: [abc]` passed --check-config, then meshd aborted at start
// with an uncaught std::invalid_argument from stoull.
TEST(Config, NonNumericRevokedSerialIsRejectedByCheckConfig) {
  auto e = error_of("mesh: {revoked_serials: [abc]}");
  EXPECT_NE(e.find("mesh.revoked_serials: 'abc' is not an integer"), std::string::npos) << e;
  EXPECT_NE(error_of("mesh: {revoked_serials: [\"18446744073709551616\"]}").find("out of range"),
            std::string::npos);
  EXPECT_NE(error_of("mesh: {revoked_serials: [\"-1\"]}").find("mesh.revoked_serials"),
            std::string::npos);
}

TEST(Config, NumbersOutOfRangeNameTheKey) {
  EXPECT_NE(error_of("mesh: {target_peers: 99999999999}")
                .find("mesh.target_peers: '99999999999' "
                      "is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("mesh: {handshake_timeout_ms: -5}").find("mesh.handshake_timeout_ms"),
            std::string::npos);
  EXPECT_NE(error_of("mesh: {idle_timeout_ms: 0}").find("mesh.idle_timeout_ms"), std::string::npos);
  EXPECT_NE(error_of("mesh: {peer_rate_frames_per_s: .nan}").find("mesh.peer_rate_frames_per_s"),
            std::string::npos);
  EXPECT_NE(error_of("mesh: {origin_burst: .inf}").find("mesh.origin_burst"), std::string::npos);
  EXPECT_NE(error_of("sensor: {feed_confidence: nan}").find("sensor.feed_confidence"),
            std::string::npos);
  EXPECT_NE(error_of("sensor: {fanout_window_ms: 0}").find("sensor.fanout_window_ms"),
            std::string::npos);
  EXPECT_NE(error_of("sensor: {bad_ports: [70000]}").find("sensor.bad_ports"), std::string::npos);
  // A usage bucket shorter than 100 ms would re-check claims against usage 10 times a second.
  EXPECT_NE(error_of("sensor: {usage_bucket_ms: 10}").find("sensor.usage_bucket_ms"),
            std::string::npos);
  EXPECT_NE(error_of("sensor: {usage_buckets: 0}").find("sensor.usage_buckets"), std::string::npos);
}

TEST(Config, ErrorsNameTheKeyAndTheReason) {
  EXPECT_NE(error_of("mesh: {listn: x}").find("mesh.listn: unknown key"), std::string::npos);
  EXPECT_NE(error_of("enforcement: {backend: ebpf}").find("enforcement.backend"),
            std::string::npos);
  EXPECT_NE(error_of("enforcement: {nft_table: \"" + std::string(256, 't') + "\"}")
                .find("enforcement.nft_table: must be 1..255 characters"),
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
    auto leaf = k.key.substr(k.key.rfind('.') == std::string_view::npos ? 0 : k.key.rfind('.') + 1);
    EXPECT_NE(text.find(std::string(leaf) + ":"), std::string::npos) << k.key;
  }
  for (const auto& p : trust::param_table())
    EXPECT_NE(text.find("  " + std::string(p.name) + ":"), std::string::npos) << p.name;
  auto c = parse_config(text, "default");
  ASSERT_TRUE(c) << c.error().message;
  // What was read back prints exactly as the defaults: every key, policy included.
  const AppConfig defaults;
  for (const auto& k : config_keys()) EXPECT_EQ(k.get(*c), k.get(defaults)) << k.key;
  for (const auto& p : trust::param_table())
    EXPECT_EQ(p.get(c->policy), p.get(defaults.policy)) << p.name;
  EXPECT_EQ(config_yaml(*c), config_yaml(defaults));
  EXPECT_EQ(c->mesh.listen, "0.0.0.0:7946");
  EXPECT_EQ(trust::policy_to_string(c->policy), "trust");
}

// Found by fuzz_config: policy doubles printed with 10 digits, so t_cap 0.99999999999 printed
// as "1", and the printed config did not even validate.
TEST(Config, PrintedPolicyNumbersReadBackExactly) {
  auto c = parse_config("policy: {t_cap: 0.99999999999, s_cap: 0.1234567890123}", "t.yaml");
  ASSERT_TRUE(c) << c.error().message;
  auto again = parse_config(config_yaml(*c), "printed");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->policy.t_cap, c->policy.t_cap);
  EXPECT_EQ(again->policy.s_cap, c->policy.s_cap);
  EXPECT_NE(default_config_yaml().find("  t_cap: 0.9  #"), std::string::npos);
}

TEST(Config, PrintedStringsReadBackByteForByte) {
  AppConfig c;
  c.node.name =
      "quote\" backslash\\ tab\t newline\n bell\x07 high\xc3\xa9 invalid\xff\xfe # not a comment";
  c.enforcement.interfaces = {"eth0", "a: b", "[x]"};
  auto again = parse_config(config_yaml(c), "printed");
  ASSERT_TRUE(again) << again.error().message << "\n" << config_yaml(c);
  EXPECT_EQ(again->node.name, c.node.name);
  EXPECT_EQ(again->enforcement.interfaces, c.enforcement.interfaces);
}

}  // namespace
}  // namespace meshd::app
