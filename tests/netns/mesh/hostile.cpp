#include "tests/netns/mesh/hostile.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

#include "meshd/app/config.hpp"
#include "meshd/common/numbers.hpp"
#include "trust/params.hpp"

namespace meshd::test {
namespace {

constexpr const char* kAttacker = "10.213.0.66";

// A shell loop that runs `command` again whenever it ends (a banned or refused attacker
// comes back), until the process group is killed.
std::string forever(const std::string& command, const std::string& pause = "0.2") {
  return "while :; do " + command + " >/dev/null 2>&1; sleep " + pause + "; done";
}

std::string py(const std::string& script) {
  return "python3 -c '" + script + "'";
}

// Holds `n` TCP connections to host:port that never send a byte (half-open from the
// daemon's point of view: accepted, handshake never started), reopening closed ones.
std::string half_open_script(const std::string& host, int port, int n) {
  std::ostringstream s;
  s << "import socket, time, resource\n"
       "resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))\n"
       "socks = []\n"
       "while True:\n"
       "    socks = [s for s in socks if s.fileno() >= 0]\n"
       "    while len(socks) < "
    << n
    << ":\n"
       "        s = socket.socket(); s.setblocking(False)\n"
       "        try: s.connect((\""
    << host << "\", " << port
    << "))\n"
       "        except BlockingIOError: pass\n"
       "        except OSError: s.close(); break\n"
       "        socks.append(s)\n"
       "    time.sleep(1)\n"
       "    for s in socks:\n"
       "        try:\n"
       "            if s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b\"\": s.close()\n"
       "        except BlockingIOError: pass\n"
       "        except OSError: s.close()\n";
  return py(s.str());
}

// Slowloris: `n` connections to each endpoint, each sending one byte of a never-ending
// request every second; closed ones are reopened. Endpoints: "tcp:HOST:PORT" or "unix:PATH".
std::string slowloris_script(const std::vector<std::string>& endpoints, int n) {
  std::ostringstream s;
  s << "import socket, time, resource\n"
       "resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))\n"
       "eps = [";
  for (const auto& e : endpoints) s << "\"" << e << "\",";
  s << "]\n"
       "def dial(e):\n"
       "    kind, rest = e.split(\":\", 1)\n"
       "    if kind == \"unix\":\n"
       "        c = socket.socket(socket.AF_UNIX); c.settimeout(1); c.connect(rest)\n"
       "    else:\n"
       "        h, p = rest.rsplit(\":\", 1); c = socket.create_connection((h, int(p)), 1)\n"
       "    c.setblocking(False)\n"
       // HTTP: the start of a request line; control: a length prefix of 256 bytes.
       "    c.sendall(b\"G\" if kind == \"tcp\" else b\"\\x00\\x00\\x01\\x00\")\n"
       "    return c\n"
       "conns = {e: [] for e in eps}\n"
       "while True:\n"
       "    for e in eps:\n"
       "        live = []\n"
       "        for c in conns[e]:\n"
       "            try: c.send(b\"x\"); live.append(c)\n"
       "            except OSError: c.close()\n"
       "        while len(live) < "
    << n
    << ":\n"
       "            try: live.append(dial(e))\n"
       "            except OSError: break\n"
       "        conns[e] = live\n"
       "    time.sleep(1)\n";
  return py(s.str());
}

}  // namespace

const char* to_string(Limits l) {
  return l == Limits::relaxed ? "relaxed" : "daemon_defaults";
}

MeshOptions hostile_mesh_options(double peer_rate, Limits limits) {
  MeshOptions o;
  o.handshake_timeout_ms = 1000;
  // Why each key is set: hostile.hpp, Limits.
  o.mesh = {{"peer_rate_frames_per_s", std::to_string(peer_rate)}};
  o.policy = {{"budget_burst", "5000"}, {"budget_rate_per_min", "100000"}};
  if (limits == Limits::relaxed) {
    o.mesh["origin_rate_per_min"] = "100000";
    o.mesh["origin_burst"] = "2000";
    o.policy["overrun_max_claims"] = "1000000";
  }
  return o;
}

std::string honest_stream_problem(const MeshOptions& options, int interval_ms) {
  std::ostringstream why;
  bool bad_number = false;
  auto value = [&why, &bad_number](const std::map<std::string, std::string>& section,
                                   const std::string& key, double fallback) {
    auto it = section.find(key);
    if (it == section.end()) return fallback;
    auto v = parse_finite(it->second, -1e300, 1e300);
    if (v) return *v;
    why << key << ": " << v.error().message << "; ";
    bad_number = true;
    return fallback;
  };
  const double origin_rate =
      value(options.mesh, "origin_rate_per_min", app::MeshConfig{}.origin_rate_per_min);
  const double overrun =
      value(options.policy, "overrun_max_claims", trust::Params{}.overrun_max_claims);
  const double window_min = value(options.policy, "overrun_window_ms",
                                  static_cast<double>(trust::Params{}.overrun_window_ms)) /
                            60000.0;
  // Claims per minute of one origin: the nodes take turns.
  const double per_origin = 60000.0 / (interval_ms * static_cast<double>(options.nodes));
  if (per_origin >= origin_rate)
    why << "the honest stream signs " << per_origin << " claims a minute per origin, not below "
        << "mesh.origin_rate_per_min " << origin_rate << "; ";
  if (per_origin * window_min >= overrun)
    why << "the honest stream signs " << per_origin * window_min << " claims per overrun window "
        << "per origin, not below policy.overrun_max_claims " << overrun << "; ";
  if (!bad_number && !why.str().empty()) why << "raise --interval-ms";
  return why.str();
}

void prepare_hostile_mesh(MeshCluster& mesh) {
  const std::string secret = mesh.dir(1) + "/falco.secret";
  std::ofstream(secret) << "hostile-test-secret\n";
  mesh.write_config(1, "");
  // The sensor section is open-ended in write_config: append the Falco keys through a
  // rewrite with the extra lines inside it.
  std::ifstream in(mesh.config_path(1));
  std::stringstream all;
  all << in.rdbuf();
  std::string y = all.str();
  const std::string anchor = "sensor:\n";
  const auto at = y.find(anchor);
  if (at == std::string::npos) throw std::runtime_error("node1 config has no sensor section");
  y.insert(at + anchor.size(),
           "  falco_listen: \"127.0.0.1:2801\"\n  falco_secret_file: " + secret + "\n");
  std::ofstream(mesh.config_path(1)) << y;
  run_checked(MeshCluster::bin("meshd") + " --check-config " + mesh.config_path(1));
}

std::vector<Attack> hostile_attacks(MeshCluster& mesh, const std::string& tool, double rate,
                                    int rounds) {
  const NetNs& atk = mesh.attach("matk", {kAttacker});
  const std::string in_atk = netns_prefix(atk);
  const std::string target = MeshCluster::ip(1) + ":" + std::to_string(MeshCluster::kMeshPort);
  // One certified identity per attack; the uncertified one has a CA of its own.
  auto identity = [&](const std::string& id, bool foreign = false) {
    const std::string d = mesh.work_dir() + "/" + id;
    mesh.make_identity(d, id, "zone-x", foreign);
    const std::string ca = foreign ? d + "/foreign-ca/ca.pub" : mesh.ca_dir() + "/ca.pub";
    return tool + " --ca " + ca + " --key " + d + "/node.key --cert " + d +
           "/node.cert --connect " + target + " --timeout-ms 3000 ";
  };
  // A banned node id stays banned for a minute: each round of an attack gets its own
  // identity (mallory-flood, mallory-flood-2, ...), taken in turn by the attack's start().
  // Its log needle names the identity of the round: "mallory-raw (" does not match the line
  // that names mallory-raw-2.
  struct Rotation {
    std::vector<std::string> ids, commands;
    std::size_t turn = 0;
    std::string next() { return commands[turn++ % commands.size()]; }
    const std::string& current() const { return ids[(turn + ids.size() - 1) % ids.size()]; }
  };
  auto identities = [&](const std::string& id) {
    auto r = std::make_shared<Rotation>();
    for (int k = 1; k <= std::max(rounds, 1); ++k) {
      r->ids.push_back(k == 1 ? id : id + "-" + std::to_string(k));
      r->commands.push_back(identity(r->ids.back()));
    }
    return r;
  };
  // A needle `before` + the round's identity + `after`.
  auto names = [](std::shared_ptr<Rotation> r, std::string before, std::string after) {
    return [r, before, after] { return before + r->current() + after; };
  };
  auto fixed = [](std::string needle) { return [needle] { return needle; }; };
  const std::string rogue = identity("rogue", true);
  const auto forger = identities("mallory-forge");
  const auto replayer = identities("mallory-replay");
  const auto equivocator = identities("mallory-equiv");
  const auto flooder = identities("mallory-flood");
  const auto raw = identities("mallory-raw");
  const std::string replay_file = mesh.work_dir() + "/replay.hex";
  const std::string node1_ns = netns_prefix(mesh.ns(1));

  std::vector<Attack> attacks;
  attacks.push_back({"uncertified-dialer",
                     "a dialer whose cert comes from another CA, reconnecting",
                     {"meshd_handshakes_failed_total"},
                     fixed(std::string("handshake from ") + kAttacker),
                     [=] {
                       return std::make_unique<BackgroundProcess>(
                           in_atk + "sh -c '" +
                           forever(rogue + "flood --count 1 --hold-ms 0", "0.05") + "'");
                     }});
  attacks.push_back({"forged-signatures",
                     "a certified peer relaying claims of node2 with bad signatures",
                     {"meshd_envelopes_refused_total{reason=\"bad_signature\"}"},
                     names(forger, "disconnecting peer ", ":"),
                     [=, &mesh] {
                       return std::make_unique<BackgroundProcess>(
                           in_atk + "sh -c '" +
                           forever(forger->next() + "forge --count 50 --hold-ms 500 --forge-cert " +
                                   mesh.dir(2) + "/node.cert") +
                           "'");
                     }});
  attacks.push_back(
      {"replay",
       "a certified peer replaying the envelopes node2 stored, 50 times over",
       {"meshd_gossip_duplicates_total"},
       names(replayer, "disconnecting peer ", ":"),
       [=, &mesh] {
         run_checked("sqlite3 '" + mesh.dir(2) +
                     "/data/meshd.db' 'SELECT hex(bytes) FROM envelopes' > " + replay_file);
         return std::make_unique<BackgroundProcess>(
             in_atk + "sh -c '" +
             forever(replayer->next() + "replay --count 50 --hold-ms 500 --file " + replay_file) +
             "'");
       }});
  attacks.push_back({"equivocation",
                     "a certified peer signing two claims under each sequence number",
                     {"meshd_equivocations_total"},
                     names(equivocator, "misbehaviour by ", ":"),
                     [=] {
                       return std::make_unique<BackgroundProcess>(
                           in_atk + "sh -c '" +
                           forever(equivocator->next() +
                                   "equivocate --count 20 --hold-ms 500 --base 100.70.0.0") +
                           "'");
                     }});
  // Each round floods its own prefixes (100.72.0.0, 100.74.0.0, ...): a prefix already blocked
  // costs the nodes less than a new one.
  auto flood_base = [turn = std::make_shared<int>(0), rounds] {
    return "100." + std::to_string(72 + 2 * ((*turn)++ % std::max(rounds, 1))) + ".0.0";
  };
  attacks.push_back({"rate-10x",
                     "a certified peer pushing valid claims at 10x mesh.peer_rate_frames_per_s",
                     {"meshd_frames_rejected_total{reason=\"rate_limit\"}",
                      "meshd_gossip_dropped_total{reason=\"peer_rate_limit\"}"},
                     names(flooder, "disconnecting peer ", ":"),
                     [=] {
                       return std::make_unique<BackgroundProcess>(
                           in_atk + "sh -c '" +
                           forever(flooder->next() + "flood --count " +
                                   std::to_string(static_cast<long>(rate * 40)) + " --rate " +
                                   std::to_string(rate) + " --hold-ms 0 --base " + flood_base()) +
                           "'");
                     }});
  attacks.push_back({"half-open-1000",
                     "1,000 parallel TCP connections that never handshake",
                     {"meshd_handshakes_failed_total", "meshd_connections_refused_total"},
                     fixed(std::string("from ") + kAttacker),
                     [=] {
                       return std::make_unique<BackgroundProcess>(
                           in_atk +
                           half_open_script(MeshCluster::ip(1), MeshCluster::kMeshPort, 1000));
                     }});
  attacks.push_back({"slowloris",
                     "100 byte-a-second connections each to metrics, Falco and control",
                     {"meshd_http_connections_closed_total", "meshd_falco_requests_rejected_total",
                      "meshd_control_connections_closed_total"},
                     fixed("slow client"),
                     [=, &mesh] {
                       return std::make_unique<BackgroundProcess>(
                           node1_ns + slowloris_script({"tcp:127.0.0.1:9464", "tcp:127.0.0.1:2801",
                                                        "unix:" + mesh.socket(1)},
                                                       100));
                     }});
  attacks.push_back(
      {"nested-and-oversized",
       "frames of 50,000 nested protobuf groups, and 2 MiB frames",
       {"meshd_frames_rejected_total{reason=\"undecodable\"}",
        "meshd_frames_rejected_total{reason=\"frame_too_large\"}",
        "meshd_envelopes_refused_total{reason=\"malformed\"}"},
       names(raw, "peer down: ", " (frame length prefix says"),
       [=] {
         const std::string who = raw->next();
         return std::make_unique<BackgroundProcess>(
             in_atk + "sh -c '" +
             forever(who + "nested --count 20 --hold-ms 300; " + who + "oversized --hold-ms 300") +
             "'");
       }});
  return attacks;
}

double metric_sum(const std::string& text, const std::string& sample_or_family) {
  const bool exact = sample_or_family.find('{') != std::string::npos;
  std::istringstream lines(text);
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const std::string name = line.substr(0, space);
    const bool hit = exact ? name == sample_or_family
                           : name == sample_or_family || name.rfind(sample_or_family + "{", 0) == 0;
    if (hit) sum += std::stod(line.substr(space + 1));
  }
  return sum;
}

double attack_count(const MeshCluster& mesh, const Attack& attack) {
  const std::string text = mesh.metrics(1);
  if (text.empty()) return -1;
  double sum = 0;
  for (const auto& m : attack.metrics) sum += metric_sum(text, m);
  return sum;
}

HonestTraffic::HonestTraffic(MeshCluster& mesh, int interval_ms)
    : mesh_(mesh), interval_ms_(interval_ms) {
  for (int i = 1; i <= mesh_.size(); ++i)
    followers_.push_back(std::make_unique<BackgroundProcess>(
        MeshCluster::bin("meshctl") + " --socket " + mesh_.socket(i) +
        " events --follow --json --limit 0 > " + mesh_.dir(i) + "/events.jsonl 2>/dev/null"));
  thread_ = std::thread([this] { loop(); });
}

HonestTraffic::~HonestTraffic() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void HonestTraffic::loop() {
  auto next = std::chrono::steady_clock::now();
  while (!stop_) {
    int k, node;
    {
      std::lock_guard lock(mu_);
      k = next_++;
    }
    node = k % mesh_.size() + 1;
    const std::string prefix =
        "198.19." + std::to_string(k / 250 % 250) + "." + std::to_string(k % 250 + 1);
    const bool ok =
        mesh_.ctl(node, "block add " + prefix + " --confidence 0.9 --reason honest").ok();
    {
      std::lock_guard lock(mu_);
      if (ok)
        issued_.emplace_back(prefix, node);
      else
        ++failed_;
    }
    next += std::chrono::milliseconds(interval_ms_);
    std::this_thread::sleep_until(next);
  }
}

HonestTraffic::Window HonestTraffic::take(int grace_ms) {
  std::vector<std::pair<std::string, int>> issued;
  Window w;
  {
    std::lock_guard lock(mu_);
    issued.swap(issued_);
    w.failed = std::exchange(failed_, 0);
  }
  w.claims = static_cast<int>(issued.size());
  std::set<std::string> wanted;
  for (const auto& [p, n] : issued) wanted.insert(p);
  // node -> prefix -> first time (µs since the epoch) of the event that matters there
  std::vector<std::map<std::string, std::int64_t>> signed_at(mesh_.size() + 1),
      enforced_at(mesh_.size() + 1);
  auto scan = [&] {
    for (int i = 1; i <= mesh_.size(); ++i) {
      std::ifstream f(mesh_.dir(i) + "/events.jsonl");
      std::string line;
      while (std::getline(f, line)) {
        if (line.find("198.19.") == std::string::npos) continue;
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        const std::string prefix = j.value("prefix", "");
        if (!wanted.contains(prefix)) continue;
        const std::string ev = j.value("event", "");
        // Microseconds where the daemon gives them (at_us), else the whole ms of "at".
        const auto at = j.contains("at_us") ? j.value("at_us", std::int64_t{0})
                                            : j.value("at", std::int64_t{0}) * 1000;
        if (ev == "claim_signed") signed_at[i].try_emplace(prefix, at);
        if (ev == "block_enforce") enforced_at[i].try_emplace(prefix, at);
      }
    }
  };
  auto complete = [&] {
    for (const auto& [p, origin] : issued)
      for (int i = 1; i <= mesh_.size(); ++i)
        if (i != origin && !enforced_at[i].contains(p)) return false;
    return true;
  };
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  do {
    for (auto& m : signed_at) m.clear();
    for (auto& m : enforced_at) m.clear();
    scan();
    if (complete()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  } while (std::chrono::steady_clock::now() < until);
  int claim = 0;
  for (const auto& [p, origin] : issued) {
    auto s = signed_at[origin].find(p);
    for (int i = 1; i <= mesh_.size(); ++i) {
      if (i == origin) continue;
      auto e = enforced_at[i].find(p);
      if (s == signed_at[origin].end() || e == enforced_at[i].end()) {
        ++w.missing;
        continue;
      }
      w.delays_ms.push_back(static_cast<double>(e->second - s->second) / 1000.0);
      w.claim_of.push_back(claim);
    }
    ++claim;
  }
  return w;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double cpu_s(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  const auto paren = all.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(all.substr(paren + 2));
  std::string field;
  double ticks = 0;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i >= 14) ticks += std::stod(field);
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double rss_mb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

}  // namespace meshd::test
