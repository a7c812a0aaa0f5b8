#include "meshd/app/config.hpp"

#include <arpa/inet.h>

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include "meshd/common/numbers.hpp"

namespace meshd::app {
namespace {

// --- typed readers: one overload per field type, so the key table stays one line a key ---

Result<void> wrong(const YAML::Node& v, const char* expected) {
  std::string got = v.IsSequence() ? "a list" : v.IsMap() ? "a map" : "'" + v.Scalar() + "'";
  return fail("bad_config", std::string("expected ") + expected + ", got " + got);
}

Result<void> read(const YAML::Node& v, std::string& out) {
  if (!v.IsScalar() && !v.IsNull()) return wrong(v, "a string");
  out = v.IsNull() ? "" : v.Scalar();
  return {};
}

Result<void> read(const YAML::Node& v, int& out) {
  if (!v.IsScalar()) return wrong(v, "an integer");
  auto n = parse_integer<int>(v.Scalar(), std::numeric_limits<int>::min(),
                              std::numeric_limits<int>::max());
  if (!n && n.error().code == "not_a_number") return wrong(v, "an integer");
  if (!n) return fail("bad_config", n.error().message);
  out = *n;
  return {};
}
Result<void> read(const YAML::Node& v, double& out) {
  if (!v.IsScalar()) return wrong(v, "a number");
  auto n = parse_finite(v.Scalar(), -std::numeric_limits<double>::max(),
                        std::numeric_limits<double>::max());
  if (!n) return wrong(v, "a finite number");
  out = *n;
  return {};
}
Result<void> read(const YAML::Node& v, bool& out) {
  if (!v.IsScalar()) return wrong(v, "true or false");
  try {
    out = v.as<bool>();
  } catch (const YAML::Exception&) {
    return wrong(v, "true or false");
  }
  return {};
}

Result<void> read(const YAML::Node& v, Prefix& out) {
  std::string text;
  if (auto r = read(v, text); !r) return r;
  auto p = Prefix::parse(text);
  if (!p) return fail("bad_config", p.error().message);
  out = *p;
  return {};
}

template <class T>
Result<void> read(const YAML::Node& v, std::vector<T>& out) {
  if (v.IsNull()) {
    out.clear();
    return {};
  }
  if (!v.IsSequence()) return wrong(v, "a list");
  std::vector<T> items;
  for (std::size_t i = 0; i < v.size(); ++i) {
    T item{};
    if (auto r = read(v[i], item); !r)
      return fail("bad_config", "item " + std::to_string(i + 1) + ": " + r.error().message);
    items.push_back(std::move(item));
  }
  out = std::move(items);
  return {};
}

// --- printers: YAML text of a value ---

// YAML double-quoted scalar: control characters are escaped, so any string prints as one
// line. Bytes >= 0x80 pass through (a YAML \\x escape is a code point, not a byte).
std::string show(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      out += "\\x";
      out += hex[ch >> 4];
      out += hex[ch & 15];
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out + "\"";
}
std::string show(int v) {
  return std::to_string(v);
}
std::string show(bool v) {
  return v ? "true" : "false";
}
std::string show(double v) {
  return shortest_double(v);
}
std::string show(const Prefix& p) {
  return show(p.to_string());
}
template <class T>
std::string show(const std::vector<T>& v) {
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + show(v[i]);
  return out + "]";
}

#define MESHD_KEY(name, field, comment)                                    \
  ConfigKey {                                                              \
    name, comment, [](const AppConfig& c) { return show(c.field); },       \
        [](AppConfig& c, const YAML::Node& v) { return read(v, c.field); } \
  }

const ConfigKey kKeys[] = {
    MESHD_KEY("node.name", node.name,
              "node id in the fleet; empty = the name in node.cert (must match it when set)"),
    MESHD_KEY("node.key", node.key, "Ed25519 secret key file (mode 0600; meshctl keys gen)"),
    MESHD_KEY("node.cert", node.cert,
              "this node's certificate, signed by the fleet CA (meshctl ca sign)"),
    MESHD_KEY("node.ca", node.ca, "fleet CA public key; only certs it signed count"),
    MESHD_KEY("node.data_dir", node.data_dir,
              "state directory: SQLite store (sequence, claims, trust)"),
    MESHD_KEY("node.test_clock_offset_ms", node.test_clock_offset_ms,
              "TEST ONLY: shift this daemon's clock by this many ms (fault tests); keep 0"),
    MESHD_KEY("mesh.listen", mesh.listen,
              "address:port for peer connections; empty = no inbound peers"),
    MESHD_KEY("mesh.peers", mesh.peers, "seeds: \"host:port\" or \"dns:NAME:PORT\" (re-resolved)"),
    MESHD_KEY("mesh.target_peers", mesh.target_peers,
              "connections kept, inbound + outbound (gossip degree D)"),
    MESHD_KEY("mesh.max_peers", mesh.max_peers, "hard cap on peer connections"),
    MESHD_KEY("mesh.max_frame_bytes", mesh.max_frame_bytes, "larger frames close the connection"),
    MESHD_KEY("mesh.handshake_timeout_ms", mesh.handshake_timeout_ms,
              "peers must finish the handshake within this"),
    MESHD_KEY("mesh.idle_timeout_ms", mesh.idle_timeout_ms,
              "silent connections are closed after this"),
    MESHD_KEY("mesh.dns_refresh_ms", mesh.dns_refresh_ms, "how often dns: seeds are re-resolved"),
    MESHD_KEY("mesh.max_concurrent_dials", mesh.max_concurrent_dials,
              "outbound dials in flight at once: a fleet started together finishes a few "
              "handshakes in time instead of timing out many"),
    MESHD_KEY("mesh.peer_exchange", mesh.peer_exchange,
              "tell peers our peers' addresses and, at max_peers, redirect dialers to them "
              "instead of refusing: a cold-started fleet meshes in seconds"),
    MESHD_KEY("mesh.redirect_slots", mesh.redirect_slots,
              "dialers redirected at once when full (each costs a signature check); more are "
              "refused"),
    MESHD_KEY("mesh.max_learned_addresses", mesh.max_learned_addresses,
              "addresses learned from peers kept for dialing (bounded: peers cannot fill memory)"),
    MESHD_KEY("mesh.trim_surplus", mesh.trim_surplus,
              "once formed, drop links above target_peers by agreement with a peer that keeps "
              "more than target_peers and shares a neighbour (each link costs two frames per "
              "claim)"),
    MESHD_KEY("mesh.peer_rate_frames_per_s", mesh.peer_rate_frames_per_s,
              "per-peer receive limit; excess lowers the peer's score"),
    MESHD_KEY(
        "mesh.origin_rate_per_min", mesh.origin_rate_per_min,
        "new events accepted from one origin per minute; excess waits, then is fetched later"),
    MESHD_KEY("mesh.origin_burst", mesh.origin_burst,
              "burst of new events accepted from one origin"),
    MESHD_KEY("mesh.revoked_serials", mesh.revoked_serials,
              "certificate serials refused at handshake"),
    MESHD_KEY("control.socket", control_socket,
              "Unix socket of the control API (mode 0600), used by meshctl"),
    MESHD_KEY("metrics.listen", metrics_listen,
              "address:port serving /metrics, /healthz and the /ui page; empty = off"),
    MESHD_KEY("metrics.ui_token_file", metrics_ui_token_file,
              "file holding the token /ui requires on non-loopback addresses; empty = /ui "
              "answers on loopback only"),
    MESHD_KEY("enforcement.backend", enforcement.backend,
              "auto | bpf | nftables | dryrun (auto: bpf, else nftables, else dryrun)"),
    MESHD_KEY("enforcement.interfaces", enforcement.interfaces,
              "uplinks for XDP ingress and TC egress programs"),
    MESHD_KEY("enforcement.cgroup", enforcement.cgroup,
              "cgroup v2 path for connect hooks; empty = the cgroup v2 mount"),
    MESHD_KEY("enforcement.pin_path", enforcement.pin_path,
              "bpffs directory for pinned maps and program links, kept when meshd exits "
              "(one per node on a host; empty = nothing outlives meshd)"),
    MESHD_KEY("enforcement.nft_table", enforcement.nft_table,
              "inet table owned by the nftables backend"),
    MESHD_KEY("sensor.enabled", sensor.enabled, "attach the connect sensor and run detectors"),
    MESHD_KEY("sensor.feeds", sensor.feeds,
              "threat-feed files: IP/CIDR per line, ';' or '#' comments"),
    MESHD_KEY("sensor.feed_confidence", sensor.feed_confidence,
              "confidence of a claim from a feed match"),
    MESHD_KEY("sensor.fanout_destinations", sensor.fanout_destinations,
              "distinct destinations per cgroup per window that count as a scan"),
    MESHD_KEY("sensor.fanout_ports", sensor.fanout_ports,
              "distinct destination ports per cgroup per window that count as a scan"),
    MESHD_KEY("sensor.fanout_window_ms", sensor.fanout_window_ms, "window of the fan-out detector"),
    MESHD_KEY(
        "sensor.usage_bucket_ms", sensor.usage_bucket_ms,
        "usage statistics bucket; claims on destinations used since are re-checked per bucket"),
    MESHD_KEY("sensor.usage_buckets", sensor.usage_buckets,
              "buckets in the usage window (the local benign evidence's memory)"),
    MESHD_KEY("sensor.bad_ports", sensor.bad_ports,
              "destination ports that are suspicious by themselves"),
    MESHD_KEY("sensor.falco_listen", sensor.falco_listen,
              "address:port accepting Falco alert JSON; empty = off"),
    MESHD_KEY("sensor.falco_secret_file", sensor.falco_secret_file,
              "file holding the shared secret (>= 16 chars) callers of falco_listen must send "
              "as 'Authorization: Bearer SECRET'; required with falco_listen"),
    MESHD_KEY("sensor.crowdsec.url", sensor.crowdsec.url,
              "CrowdSec Local API, http://HOST:PORT; empty = off"),
    MESHD_KEY("sensor.crowdsec.api_key_file", sensor.crowdsec.api_key_file,
              "file holding the bouncer API key (cscli bouncers add meshd -o raw)"),
    MESHD_KEY("sensor.crowdsec.poll_ms", sensor.crowdsec.poll_ms,
              "poll interval of the decision stream"),
    MESHD_KEY("sensor.crowdsec.timeout_ms", sensor.crowdsec.timeout_ms,
              "one request to the LAPI must complete within this"),
    MESHD_KEY("sensor.crowdsec.confidence_crowdsec", sensor.crowdsec.confidence_crowdsec,
              "claim confidence of origin crowdsec (a scenario fired on this host)"),
    MESHD_KEY("sensor.crowdsec.confidence_cscli", sensor.crowdsec.confidence_cscli,
              "claim confidence of origin cscli (cscli decisions add on this host)"),
    MESHD_KEY("sensor.crowdsec.confidence_cscli_import", sensor.crowdsec.confidence_cscli_import,
              "claim confidence of origin cscli-import (cscli decisions import)"),
    MESHD_KEY("sensor.crowdsec.max_claims_per_min", sensor.crowdsec.max_claims_per_min,
              "claims signed per minute for decisions (CAPI/lists: never; all: enforced here)"),
    MESHD_KEY("protected", protected_prefixes,
              "never blocked, whatever the claims (plus own addresses, gateway, DNS, peers, "
              "loopback, link-local)"),
    MESHD_KEY("log.format", log_format, "text | json"),
    MESHD_KEY("log.level", log_level, "trace | debug | info | warn | error"),
};
#undef MESHD_KEY

const ConfigKey* find_key(std::string_view key) {
  for (const auto& k : kKeys)
    if (k.key == key) return &k;
  return nullptr;
}

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed)
    if (v == a) return true;
  return false;
}

// "address:port" ("[v6]:port" too). `names`: the host may be a DNS name, else it must be an IP
// address. The error says what is wrong with `v`.
Result<void> check_host_port(const std::string& v, bool names) {
  auto colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == v.size())
    return fail("bad_config", "'" + v + "' is not address:port");
  auto port = parse_integer<unsigned>(std::string_view(v).substr(colon + 1), 0, 65535);
  if (!port) return fail("bad_config", "'" + v + "': port " + port.error().message);
  std::string host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1)
    return {};
  if (!names) return fail("bad_config", "'" + v + "': '" + host + "' is not an IP address");
  if (host.size() > 253) return fail("bad_config", "'" + v + "': host name longer than 253");
  for (char ch : host)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_'))
      return fail("bad_config", "'" + v + "': '" + host + "' is not a host name or IP address");
  return {};
}

// Cross-field checks after all keys are read; each error names its key.
Result<void> validate(const AppConfig& c) {
  auto bad = [](std::string key, std::string why) { return fail("bad_config", key + ": " + why); };
  if (!one_of(c.enforcement.backend, {"auto", "bpf", "nftables", "dryrun"}))
    return bad("enforcement.backend",
               "'" + c.enforcement.backend + "' is not auto, bpf, nftables or dryrun");
  // The kernel's limit (NFT_NAME_MAXLEN 256, with the terminating NUL).
  if (c.enforcement.nft_table.empty() || c.enforcement.nft_table.size() > 255)
    return bad("enforcement.nft_table", "must be 1..255 characters");
  if (!one_of(c.log_format, {"text", "json"}))
    return bad("log.format", "'" + c.log_format + "' is not text or json");
  if (!one_of(c.log_level, {"trace", "debug", "info", "warn", "error"}))
    return bad("log.level", "'" + c.log_level + "' is not trace, debug, info, warn or error");
  auto address = [&](const char* key, const std::string& v, bool names) -> Result<void> {
    if (auto r = check_host_port(v, names); !r) return bad(key, r.error().message);
    return {};
  };
  if (!c.mesh.listen.empty())
    if (auto r = address("mesh.listen", c.mesh.listen, false); !r) return r;
  if (!c.metrics_listen.empty())
    if (auto r = address("metrics.listen", c.metrics_listen, false); !r) return r;
  if (!c.sensor.falco_listen.empty()) {
    if (auto r = address("sensor.falco_listen", c.sensor.falco_listen, false); !r) return r;
    // Every alert it accepts becomes a claim this node signs: no anonymous callers.
    if (c.sensor.falco_secret_file.empty())
      return bad("sensor.falco_secret_file",
                 "required when sensor.falco_listen is set (a file holding the shared secret "
                 "that falcosidekick sends as 'Authorization: Bearer SECRET')");
  }
  for (const auto& p : c.mesh.peers) {
    if (auto r = address("mesh.peers", p.starts_with("dns:") ? p.substr(4) : p, true); !r) return r;
    if (p.ends_with(":0")) return bad("mesh.peers", "'" + p + "': port 0");
  }
  for (const auto& s : c.mesh.revoked_serials)
    if (auto n = parse_integer<std::uint64_t>(s, 0, std::numeric_limits<std::uint64_t>::max()); !n)
      return bad("mesh.revoked_serials",
                 n.error().message + " (a certificate serial is a decimal integer < 2^64)");
  if (c.mesh.target_peers < 1 || c.mesh.max_peers < c.mesh.target_peers)
    return bad("mesh.max_peers", "must be >= mesh.target_peers >= 1");
  if (c.mesh.max_frame_bytes < 1024 || c.mesh.max_frame_bytes > (64 << 20))
    return bad("mesh.max_frame_bytes", "must be between 1 KiB and 64 MiB");
  if (c.node.data_dir.empty()) return bad("node.data_dir", "must not be empty");
  if (c.control_socket.empty()) return bad("control.socket", "must not be empty");
  auto in = [&](const char* key, double v, double lo, double hi) -> Result<void> {
    if (v < lo || v > hi)
      return bad(key, shortest_double(v) + " is out of range [" + shortest_double(lo) + ", " +
                          shortest_double(hi) + "]");
    return {};
  };
  constexpr double kDayMs = 86'400'000;
  for (auto [key, v, lo, hi] :
       {std::tuple{"mesh.max_peers", double(c.mesh.max_peers), 1.0, 100'000.0},
        {"node.test_clock_offset_ms", double(c.node.test_clock_offset_ms), -kDayMs, kDayMs},
        {"mesh.handshake_timeout_ms", double(c.mesh.handshake_timeout_ms), 1.0, kDayMs},
        {"mesh.idle_timeout_ms", double(c.mesh.idle_timeout_ms), 1.0, kDayMs},
        {"mesh.dns_refresh_ms", double(c.mesh.dns_refresh_ms), 1.0, kDayMs},
        {"mesh.max_concurrent_dials", double(c.mesh.max_concurrent_dials), 1.0, 1024.0},
        {"mesh.redirect_slots", double(c.mesh.redirect_slots), 0.0, 1024.0},
        {"mesh.max_learned_addresses", double(c.mesh.max_learned_addresses), 0.0, 100'000.0},
        {"mesh.peer_rate_frames_per_s", c.mesh.peer_rate_frames_per_s, 1e-6, 1e9},
        {"mesh.origin_rate_per_min", c.mesh.origin_rate_per_min, 1e-6, 1e12},
        {"mesh.origin_burst", c.mesh.origin_burst, 1.0, 1e12},
        {"sensor.fanout_destinations", double(c.sensor.fanout_destinations), 1.0, 1e9},
        {"sensor.fanout_ports", double(c.sensor.fanout_ports), 1.0, 65536.0},
        {"sensor.fanout_window_ms", double(c.sensor.fanout_window_ms), 1.0, kDayMs},
        {"sensor.usage_bucket_ms", double(c.sensor.usage_bucket_ms), 100.0, kDayMs},
        {"sensor.usage_buckets", double(c.sensor.usage_buckets), 1.0, 1440.0}})
    if (auto r = in(key, v, lo, hi); !r) return r;
  if (c.sensor.feed_confidence <= 0 || c.sensor.feed_confidence > 1)
    return bad("sensor.feed_confidence", "must be in (0, 1]");
  for (int port : c.sensor.bad_ports)
    if (port < 1 || port > 65535)
      return bad("sensor.bad_ports", std::to_string(port) + " is not a port");
  if (auto r = c.policy.validate(); !r) return bad("policy", r.error().message);
  const auto& cs = c.sensor.crowdsec;
  if (!cs.url.empty() && !cs.url.starts_with("http://"))
    return bad("sensor.crowdsec.url",
               "'" + cs.url + "' is not http://HOST:PORT (https is not supported)");
  if (!cs.url.empty() && cs.api_key_file.empty())
    return bad("sensor.crowdsec.api_key_file", "must be set when sensor.crowdsec.url is");
  if (cs.poll_ms < 100 || cs.poll_ms > 3'600'000)
    return bad("sensor.crowdsec.poll_ms", "must be between 100 and 3600000");
  if (cs.timeout_ms < 100 || cs.timeout_ms > 600'000)
    return bad("sensor.crowdsec.timeout_ms", "must be between 100 and 600000");
  for (auto [key, v] : {std::pair{"confidence_crowdsec", cs.confidence_crowdsec},
                        std::pair{"confidence_cscli", cs.confidence_cscli},
                        std::pair{"confidence_cscli_import", cs.confidence_cscli_import}})
    if (v <= 0 || v > 1) return bad(std::string("sensor.crowdsec.") + key, "must be in (0, 1]");
  // Signing more than policy.overrun_max_claims claims per policy.overrun_window_ms is provable
  // misbehaviour: the fleet would quarantine this node. Stay at half of it at most.
  const double per_window =
      cs.max_claims_per_min * static_cast<double>(c.policy.overrun_window_ms) / 60'000.0;
  if (cs.max_claims_per_min < 1 || per_window > c.policy.overrun_max_claims / 2)
    return bad("sensor.crowdsec.max_claims_per_min",
               "must be >= 1 and at most half of policy.overrun_max_claims per "
               "policy.overrun_window_ms (more is quarantined as gross overrun)");
  return {};
}

// Walks a mapping and applies each leaf through the key table; `prefix` is the dotted path.
Result<void> apply_map(AppConfig& c, const YAML::Node& map, const std::string& prefix) {
  for (const auto& kv : map) {
    std::string key = prefix + kv.first.Scalar();
    const YAML::Node& value = kv.second;
    if (key == "policy") {
      if (!value.IsMap() && !value.IsNull()) return fail("bad_config", "policy: expected a map");
      if (value.IsNull()) continue;
      for (const auto& p : value) {
        std::string name = p.first.Scalar();
        if (!p.second.IsScalar())
          return fail("bad_config", "policy." + name + ": expected a single value");
        if (auto r = trust::set_param(c.policy, name, p.second.Scalar()); !r)
          return fail("bad_config", "policy." + name + ": " + r.error().message);
      }
      continue;
    }
    if (const ConfigKey* k = find_key(key)) {
      if (auto r = k->set(c, value); !r) return fail("bad_config", key + ": " + r.error().message);
      continue;
    }
    if (value.IsMap()) {
      bool is_section = false;
      for (const auto& k : kKeys) is_section |= k.key.starts_with(key + ".");
      if (is_section) {
        if (auto r = apply_map(c, value, key + "."); !r) return r;
        continue;
      }
    }
    return fail("bad_config", key + ": unknown key (see meshd --print-default-config)");
  }
  return {};
}

}  // namespace

std::span<const ConfigKey> config_keys() {
  return kKeys;
}

Result<AppConfig> parse_config(std::string_view yaml_text, std::string_view source) {
  const std::string src(source);
  AppConfig c;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail("bad_config",
                src + ": not valid YAML: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (root.IsNull()) return c;  // an empty file means all defaults
  if (!root.IsMap()) return fail("bad_config", src + ": top level must be a map of sections");
  if (auto r = apply_map(c, root, ""); !r)
    return fail("bad_config", src + ": " + r.error().message);
  if (auto r = validate(c); !r) return fail("bad_config", src + ": " + r.error().message);
  return c;
}

Result<AppConfig> load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail("bad_config", "cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

std::string default_config_yaml() {
  return "# meshd configuration: every key with its default.\n" + config_yaml(AppConfig{});
}

std::string config_yaml(const AppConfig& c) {
  std::string out;
  std::string section, subsection;
  for (const auto& k : kKeys) {
    auto dot = k.key.find('.');
    std::string sec = dot == std::string_view::npos ? "" : std::string(k.key.substr(0, dot));
    std::string leaf(dot == std::string_view::npos ? k.key : k.key.substr(dot + 1));
    if (sec != section) {
      section = sec;
      if (!sec.empty()) out += sec + ":\n";
    }
    // Third-level keys ("sensor.crowdsec.url") print as a nested map.
    std::string indent = sec.empty() ? "" : "  ";
    if (auto dot2 = leaf.find('.'); dot2 != std::string::npos) {
      std::string sub = leaf.substr(0, dot2);
      if (sub != subsection) out += indent + sub + ":\n";
      subsection = sub;
      leaf = leaf.substr(dot2 + 1);
      indent += "  ";
    } else {
      subsection.clear();
    }
    out += indent + leaf + ": " + k.get(c) + "  # " + std::string(k.comment) + "\n";
  }
  out += "policy:\n";
  for (const auto& p : trust::param_table()) {
    out += "  " + std::string(p.name) + ": " + p.get(c.policy) + "  # [" + std::string(p.unit) +
           "] " + std::string(p.description) + "\n";
  }
  return out;
}

}  // namespace meshd::app
