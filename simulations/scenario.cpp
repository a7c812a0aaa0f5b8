#include "simulations/scenario.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

namespace meshd::sim {

std::string_view to_string(Strategy s) {
  switch (s) {
    case Strategy::random:
      return "random";
    case Strategy::targeted:
      return "targeted";
    case Strategy::protected_:
      return "protected";
    case Strategy::equivocate:
      return "equivocate";
    case Strategy::flood:
      return "flood";
    case Strategy::milking:
      return "milking";
    case Strategy::sybil:
      return "sybil";
  }
  return "invalid";
}

std::string PolicySpec::to_string() const {
  switch (kind) {
    case PolicyKind::trust:
      return "trust";
    case PolicyKind::naive:
      return "naive";
    case PolicyKind::quorum:
      return "quorum:" + std::to_string(quorum_k);
  }
  return "invalid";
}

Result<PolicySpec> parse_policy(std::string_view text) {
  PolicySpec p;
  if (text == "trust") return p;
  if (text == "naive") {
    p.kind = PolicyKind::naive;
    return p;
  }
  if (text.starts_with("quorum:")) {
    auto num = text.substr(7);
    int k = 0;
    auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), k);
    if (ec == std::errc() && ptr == num.data() + num.size() && k >= 1) {
      p.kind = PolicyKind::quorum;
      p.quorum_k = k;
      return p;
    }
  }
  return fail("bad_policy",
              "policy '" + std::string(text) + "' is not one of trust, naive, quorum:K (K >= 1)");
}

namespace {

// Walks one YAML mapping, checking that every key present is known and every value has the
// right type and range. The first problem found is kept; later reads are no-ops.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path, Error* err)
      : node_(node), path_(std::move(path)), err_(err) {
    if (err_->code.empty() && node_ && !node_.IsMap())
      set_error("bad_type", path_ + " must be a mapping");
  }

  std::string key_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  template <class T>
  void read(std::string_view key, T& out, double lo, double hi) {
    seen_.insert(std::string(key));
    if (!ok() || !node_ || !node_.IsMap()) return;
    YAML::Node v = node_[std::string(key)];
    if (!v) return;
    const std::string kp = key_path(key);
    if (!v.IsScalar()) return set_error("bad_type", kp + " must be a number");
    try {
      double d = v.as<double>();
      if (!std::isfinite(d) || d < lo || d > hi) {
        std::ostringstream os;
        os << kp << " = " << v.Scalar() << " is out of range [" << lo << ", " << hi << "]";
        return set_error("bad_value", os.str());
      }
      if constexpr (std::is_integral_v<T>) {
        if (d != std::floor(d)) return set_error("bad_type", kp + " must be an integer");
        out = static_cast<T>(v.as<long long>());
      } else {
        out = static_cast<T>(d);
      }
    } catch (const YAML::Exception&) {
      set_error("bad_type", kp + " = '" + v.Scalar() + "' is not a number");
    }
  }

  void read_string(std::string_view key, std::string& out) {
    seen_.insert(std::string(key));
    if (!ok() || !node_ || !node_.IsMap()) return;
    YAML::Node v = node_[std::string(key)];
    if (!v) return;
    if (!v.IsScalar()) return set_error("bad_type", key_path(key) + " must be a string");
    out = v.Scalar();
  }

  // Returns the child node (possibly undefined) and marks the key as known.
  YAML::Node child(std::string_view key) {
    seen_.insert(std::string(key));
    if (!node_ || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    return node_[std::string(key)];
  }

  // Call after all reads: any key not read is unknown.
  void finish() {
    if (!ok() || !node_ || !node_.IsMap()) return;
    for (const auto& kv : node_) {
      std::string k = kv.first.as<std::string>();
      if (!seen_.contains(k)) {
        std::string known;
        for (const auto& s : seen_) known += (known.empty() ? "" : ", ") + s;
        return set_error("unknown_key",
                         "unknown key " + key_path(k) + " (known keys here: " + known + ")");
      }
    }
  }

  bool ok() const { return err_->code.empty(); }
  void set_error(std::string code, std::string msg) {
    if (ok()) *err_ = Error{std::move(code), std::move(msg)};
  }

 private:
  YAML::Node node_;
  std::string path_;
  Error* err_;
  std::set<std::string> seen_;
};

constexpr double kBig = 1e12;

void read_link(const YAML::Node& n, LinkSpec& l, Error* err) {
  MapReader r(n, "link", err);
  r.read("latency_ms", l.latency_ms, 0, 60'000);
  r.read("jitter_ms", l.jitter_ms, 0, 60'000);
  r.read("loss", l.loss, 0, 0.99);
  r.finish();
}

void read_traffic(const YAML::Node& n, TrafficSpec& t, Error* err) {
  MapReader r(n, "traffic", err);
  r.read("services", t.services, 1, 1'000'000);
  r.read("zipf", t.zipf, 0, 10);
  r.read("flows_per_node_per_s", t.flows_per_node_per_s, 0, 1e9);
  r.read("node_variation", t.node_variation, 0, 5);
  r.read("protected_flows_per_s", t.protected_flows_per_s, 0, 1e9);
  r.read("window_s", t.window_s, 1, 1e7);
  r.read("workloads", t.workloads, 1, 1'000'000);
  r.finish();
}

template <class T, class F>
void read_list(const YAML::Node& n, const std::string& key, std::vector<T>& out, Error* err,
               F read_item) {
  if (!n || !err->code.empty()) return;
  if (!n.IsSequence()) {
    *err = Error{"bad_type", key + " must be a list"};
    return;
  }
  for (std::size_t i = 0; i < n.size() && err->code.empty(); ++i) {
    T item;
    read_item(n[i], key + "[" + std::to_string(i) + "]", item, err);
    out.push_back(item);
  }
}

void check_severity(MapReader& r, const std::string& path, const std::string& sev) {
  if (sev != "low" && sev != "medium" && sev != "high" && sev != "critical")
    r.set_error("bad_value",
                path + ".severity = '" + sev + "' is not one of low, medium, high, critical");
}

void read_attack(const YAML::Node& n, const std::string& path, AttackSpec& a, Error* err) {
  MapReader r(n, path, err);
  r.read("targets", a.targets, 0, 65'000);
  r.read("detect_prob", a.detect_prob, 0, 1);
  r.read("start_s", a.start_s, 0, kBig);
  r.read("spread_s", a.spread_s, 0, kBig);
  r.read("confidence", a.confidence, 0, 1);
  r.read("ttl_s", a.ttl_s, 1, kBig);
  r.read_string("severity", a.severity);
  check_severity(r, path, a.severity);
  r.finish();
}

void read_adversary(const YAML::Node& n, const std::string& path, AdversarySpec& a, Error* err) {
  MapReader r(n, path, err);
  std::string strategy = "targeted";
  r.read_string("strategy", strategy);
  static const std::pair<const char*, Strategy> kNames[] = {
      {"random", Strategy::random},        {"targeted", Strategy::targeted},
      {"protected", Strategy::protected_}, {"equivocate", Strategy::equivocate},
      {"flood", Strategy::flood},          {"milking", Strategy::milking},
      {"sybil", Strategy::sybil}};
  bool found = false;
  for (const auto& [name, s] : kNames)
    if (strategy == name) {
      a.strategy = s;
      found = true;
    }
  if (!found)
    r.set_error("bad_value", path + ".strategy = '" + strategy +
                                 "' is not one of random, targeted, protected, equivocate, "
                                 "flood, milking, sybil");
  if (a.strategy == Strategy::flood) a.rate_per_min = 6000;
  r.read("count", a.count, 1, 100'000);
  r.read("rate_per_min", a.rate_per_min, 0, 600'000);
  r.read("start_s", a.start_s, 0, kBig);
  a.honest_until_s = a.start_s;
  r.read("honest_until_s", a.honest_until_s, 0, kBig);
  r.read("domains", a.domains, 1, 100'000);
  r.read("confidence", a.confidence, 0, 1);
  r.read("ttl_s", a.ttl_s, 1, kBig);
  r.read("sybils", a.sybils, 1, 100'000);
  r.read_string("severity", a.severity);
  check_severity(r, path, a.severity);
  r.finish();
}

void read_fault(const YAML::Node& n, const std::string& path, FaultSpec& f, Error* err) {
  MapReader r(n, path, err);
  std::string kind;
  r.read_string("kind", kind);
  if (kind == "partition") {
    f.kind = FaultKind::partition;
  } else if (kind == "crash") {
    f.kind = FaultKind::crash;
  } else {
    r.set_error(kind.empty() ? "missing_key" : "bad_value",
                path + ".kind = '" + kind + "' is not one of partition, crash");
  }
  r.read("at_s", f.at_s, 0, kBig);
  r.read("fraction", f.fraction, 0, 1);
  r.read("duration_s", f.duration_s, 0, kBig);
  r.read("count", f.count, 0, 1'000'000);
  r.read("restart_after_s", f.restart_after_s, 0, kBig);
  r.finish();
}

}  // namespace

Result<Scenario> parse_scenario(std::string_view yaml_text, std::string_view default_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail("bad_yaml", std::string("not valid YAML: ") + e.what());
  }
  Scenario s;
  s.name = std::string(default_name);
  if (root.IsNull()) return s;  // an empty file is all defaults
  Error err;
  MapReader r(root, "", &err);
  r.read_string("name", s.name);
  r.read("seed", s.seed, 0, 9.007199254740992e15);
  r.read("nodes", s.nodes, 2, 1'000'000);
  r.read("degree", s.degree, 1, 1'000);
  r.read("domains", s.domains, 1, 1'000'000);
  read_link(r.child("link"), s.link, &err);
  r.read("duration_s", s.duration_s, 1, 1e7);
  std::string policy = "trust";
  r.read_string("policy", policy);
  if (err.code.empty()) {
    auto p = parse_policy(policy);
    if (!p) return fail("bad_value", "policy: " + p.error().message);
    s.policy = *p;
  }
  if (YAML::Node pp = r.child("policy_params"); pp && err.code.empty()) {
    if (!pp.IsMap()) return fail("bad_type", "policy_params must be a mapping name: number");
    for (const auto& kv : pp) {
      const std::string k = kv.first.as<std::string>();
      try {
        if (!kv.second.IsScalar()) throw YAML::Exception(YAML::Mark(), "not a scalar");
        s.policy_params[k] = kv.second.Scalar();
      } catch (const YAML::Exception&) {
        return fail("bad_type", "policy_params." + k + " must be a scalar value");
      }
    }
  }
  read_traffic(r.child("traffic"), s.traffic, &err);
  read_list(r.child("attacks"), "attacks", s.attacks, &err, read_attack);
  read_list(r.child("adversaries"), "adversaries", s.adversaries, &err, read_adversary);
  read_list(r.child("faults"), "faults", s.faults, &err, read_fault);
  r.read("sample_s", s.sample_s, 0, kBig);
  r.finish();
  if (!err.code.empty()) return std::unexpected(err);
  if (s.degree >= s.nodes)
    return fail("bad_value", "degree = " + std::to_string(s.degree) +
                                 " must be smaller than nodes = " + std::to_string(s.nodes));
  int adversaries = 0;
  for (std::size_t i = 0; i < s.adversaries.size(); ++i) {
    const auto& a = s.adversaries[i];
    adversaries += a.count;
    if (a.domains > s.domains)
      return fail("bad_value", "adversaries[" + std::to_string(i) +
                                   "].domains = " + std::to_string(a.domains) +
                                   " exceeds domains = " + std::to_string(s.domains));
    if (a.count < a.domains)
      return fail("bad_value",
                  "adversaries[" + std::to_string(i) + "].domains must not exceed its count");
  }
  if (adversaries >= s.nodes)
    return fail("bad_value", "adversaries: " + std::to_string(adversaries) +
                                 " compromised nodes leave no honest node");
  if (s.sample_s <= 0) s.sample_s = s.duration_s / 200;
  return s;
}

Result<Scenario> load_scenario(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail("io", "cannot read scenario file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string stem = path;
  if (auto slash = stem.find_last_of('/'); slash != std::string::npos) stem.erase(0, slash + 1);
  if (auto dot = stem.rfind('.'); dot != std::string::npos) stem.erase(dot);
  auto s = parse_scenario(ss.str(), stem);
  if (!s) return fail(s.error().code, path + ": " + s.error().message);
  return s;
}

}  // namespace meshd::sim
