// meshd's configuration: one YAML file, every key with a default, so the embedded default is a
// standalone node (local sensor, best available enforcement, no peers). Keys are listed once,
// in config_keys(), which drives parsing, `--print-default-config` and error messages alike.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"
#include "trust/params.hpp"

namespace YAML {
class Node;
}

namespace meshd::app {

struct NodeConfig {
  std::string name;  // empty: the host name
  std::string key = "/var/lib/meshd/node.key";
  std::string cert = "/var/lib/meshd/node.cert";
  std::string ca = "/etc/meshd/ca.pub";
  std::string data_dir = "/var/lib/meshd";
  // TEST ONLY: shifts this daemon's wall clock (claims' issued_at, freshness checks, cert
  // validity) by this many ms, so netns fault tests can run a node whose clock is wrong.
  // Never set it in production; 0 = the host's clock.
  int test_clock_offset_ms = 0;
};

struct MeshConfig {
  std::string listen = "0.0.0.0:7946";  // empty: do not accept peers
  std::vector<std::string> peers;       // "host:port" or "dns:NAME:PORT"
  int target_peers = 8;                 // connections kept, inbound + outbound (D)
  int max_peers = 32;                   // hard cap on connections
  int max_frame_bytes = 1 << 20;
  int handshake_timeout_ms = 5000;
  int idle_timeout_ms = 60000;
  int dns_refresh_ms = 30000;
  int max_concurrent_dials = 4;          // outbound dials in flight at once
  bool peer_exchange = true;             // share peers' addresses; redirect dialers when full
  int redirect_slots = 8;                // dialers being redirected at once when full
  int max_learned_addresses = 256;       // addresses learned from peers kept for dialing
  bool trim_surplus = true;              // drop links above target_peers by agreement
  double peer_rate_frames_per_s = 2000;  // per-peer receive limit (sustained)
  double origin_rate_per_min = 600;      // new events accepted per origin (sustained)
  double origin_burst = 200;             // and in a burst
  std::vector<std::string> revoked_serials;
};

struct EnforcementConfig {
  std::string backend = "auto";  // auto | bpf | nftables | dryrun
  std::vector<std::string> interfaces;
  std::string cgroup;  // empty: the cgroup v2 mount from /proc/mounts
  std::string pin_path = "/sys/fs/bpf/meshd";
  std::string nft_table = "meshd";
};

// sensor.crowdsec: decisions of a CrowdSec Local API (bouncer stream), see
// sensor/detectors/crowdsec.hpp for what becomes a claim and what stays local.
struct CrowdsecConfig {
  std::string url;  // empty: off; e.g. http://127.0.0.1:8080
  std::string api_key_file = "/etc/meshd/crowdsec.key";
  int poll_ms = 1000;
  int timeout_ms = 10000;
  double confidence_crowdsec = 0.8;      // origin crowdsec: a scenario fired on this host
  double confidence_cscli = 0.9;         // origin cscli: an operator on this host
  double confidence_cscli_import = 0.9;  // origin cscli-import
  int max_claims_per_min = 100;          // claims signed for CrowdSec decisions; the rest wait
};

struct SensorConfig {
  bool enabled = true;
  std::vector<std::string> feeds;  // threat-feed files (IP/CIDR lists, Spamhaus DROP style)
  double feed_confidence = 0.9;
  int fanout_destinations = 100;  // distinct destinations per cgroup per window
  int fanout_ports = 50;          // distinct destination ports per cgroup per window
  int fanout_window_ms = 60000;
  std::vector<int> bad_ports{4444, 6667, 1337, 31337};
  // Usage statistics (local benign evidence, trust/README.md "Collusion resistance"): a sliding
  // window of usage_buckets x usage_bucket_ms. Claims on destinations whose flows moved are
  // re-checked against the evidence once per bucket.
  int usage_bucket_ms = 60000;
  int usage_buckets = 10;
  std::string falco_listen;       // empty: no Falco alert endpoint
  std::string falco_secret_file;  // shared secret callers send as Authorization: Bearer
  CrowdsecConfig crowdsec;
};

struct AppConfig {
  NodeConfig node;
  MeshConfig mesh;
  std::string control_socket = "/run/meshd/meshd.sock";
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no metrics endpoint
  // Token /ui requires on non-loopback addresses of metrics.listen; empty: loopback only.
  std::string metrics_ui_token_file;
  EnforcementConfig enforcement;
  SensorConfig sensor;
  std::vector<Prefix> protected_prefixes;
  trust::Params policy;
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace | debug | info | warn | error
};

// Reads and validates a config file. Errors ("bad_config") name the file, the key and why;
// unknown keys are errors (a typo must not silently fall back to a default).
Result<AppConfig> load_config_file(const std::string& path);
Result<AppConfig> parse_config(std::string_view yaml_text, std::string_view source_name);
// Every key with its default value and a one-line comment, as valid YAML.
std::string default_config_yaml();
// Every key of `c` with a one-line comment, as YAML that parse_config() reads back to `c`.
std::string config_yaml(const AppConfig& c);

// One row per non-policy key (policy.* keys come from trust::param_table()).
struct ConfigKey {
  std::string_view key;                                      // dotted, e.g. "mesh.listen"
  std::string_view comment;                                  // one line
  std::string (*get)(const AppConfig&);                      // as YAML text
  Result<void> (*set)(AppConfig&, const YAML::Node& value);  // parse + check
};
std::span<const ConfigKey> config_keys();

}  // namespace meshd::app
