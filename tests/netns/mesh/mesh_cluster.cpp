#include "tests/netns/mesh/mesh_cluster.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef MESHD_TEST_BIN_DIR
#error "MESHD_TEST_BIN_DIR must name the directory of meshd and meshctl"
#endif

namespace meshd::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string quote(const std::string& s) {
  return "'" + s + "'";
}

// Waits for `pid` up to `ms`; true once it was reaped.
bool reap_within(pid_t pid, int ms) {
  for (int waited = 0; waited <= ms; waited += 20) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

std::string MeshCluster::bin(const std::string& tool) {
  // The environment may point at another build (a benchmark comparing an older meshd).
  const char* dir = std::getenv("MESHD_TEST_BIN_DIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : MESHD_TEST_BIN_DIR) + "/" + tool;
}

std::string MeshCluster::domain(int node) const {
  return options_.domains.at(static_cast<std::size_t>(node - 1) % options_.domains.size());
}

std::string MeshCluster::mac(int node) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:4d:53:00:%02x:%02x", (node >> 8) & 0xff, node & 0xff);
  return buf;
}

std::string MeshCluster::dir(int node) const {
  return work_ + "/" + name(node);
}

MeshCluster::MeshCluster(MeshOptions options) : options_(std::move(options)) {
  char tmpl[] = "/tmp/meshd-mesh-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  work_ = tmpl;
  try {
    ensure_bpffs();
    static_l2_ = options_.static_l2.value_or(size() >= MeshOptions::kStaticL2FromNodes);
    // IPv6 off in the namespace before its links exist (a per-namespace sysctl: the host's
    // own settings are not touched).
    const auto no_ipv6 = [&](const NetNs& ns) {
      if (static_l2_)
        run_checked(netns_prefix(ns) +
                    "sysctl -qw net.ipv6.conf.default.disable_ipv6=1 "
                    "net.ipv6.conf.all.disable_ipv6=1");
    };
    hub_ = std::make_unique<NetNs>("mhub");
    no_ipv6(*hub_);
    const std::string hub = "ip -n " + hub_->name() + " ";
    run_checked(hub + "link add br0 type bridge && " + hub + "link set br0 up");
    run_checked(bin("meshctl") + " ca init --out " + ca_dir());
    for (int i = 1; i <= size(); ++i) {
      Node n;
      n.ns = std::make_unique<NetNs>("mn" + std::to_string(i));
      no_ipv6(*n.ns);
      const std::string veth = "v" + std::to_string(i);
      run_checked(hub + "link add " + veth + " type veth peer name eth0 address " + mac(i) +
                  " netns " + n.ns->name());
      run_checked(hub + "link set " + veth + " master br0 up");
      run_checked("ip -n " + n.ns->name() + " addr add " + ip(i) + "/24 dev eth0 && ip -n " +
                  n.ns->name() + " link set eth0 up");
      n.cgroup = std::make_unique<TestCgroup>("meshd-mesh-n" + std::to_string(i));
      n.pins = std::make_unique<BpfPinDir>("meshd-mesh-n" + std::to_string(i));
      nodes_.push_back(std::move(n));
      fs::create_directories(dir(i) + "/data");
      bool foreign = std::find(options_.foreign_ca_nodes.begin(), options_.foreign_ca_nodes.end(),
                               i) != options_.foreign_ca_nodes.end();
      make_identity(dir(i), name(i), domain(i), foreign);
      auto feed = options_.feeds.find(i);
      if (feed != options_.feeds.end()) write_text(dir(i) + "/feed.txt", feed->second);
      write_config(i);
    }
    if (static_l2_) {
      // One `ip -batch` per namespace: 99 permanent neighbours each, no ARP at all.
      for (int i = 1; i <= size(); ++i) {
        std::ostringstream batch;
        for (int j = 1; j <= size(); ++j)
          if (j != i)
            batch << "neigh replace " << ip(j) << " lladdr " << mac(j)
                  << " dev eth0 nud permanent\n";
        const std::string file = dir(i) + "/neigh.batch";
        write_text(file, batch.str());
        run_checked("ip -n " + ns(i).name() + " -batch " + file);
      }
      std::vector<int> all(static_cast<std::size_t>(size()));
      for (int i = 1; i <= size(); ++i) all[static_cast<std::size_t>(i - 1)] = i;
      add_static_fdb(all);
    }
  } catch (...) {
    // Members built so far (namespaces, cgroups, pins) are destroyed by the unwinding.
    std::error_code ec;
    fs::remove_all(work_, ec);
    throw;
  }
}

MeshCluster::~MeshCluster() {
  for (int i = 1; i <= static_cast<int>(nodes_.size()); ++i) {
    Node& n = nodes_[static_cast<std::size_t>(i - 1)];
    if (n.pid <= 0) continue;
    ::kill(n.pid, SIGTERM);
    if (!reap_within(n.pid, 3000)) {
      ::kill(n.pid, SIGKILL);
      reap_within(n.pid, 3000);
    }
    n.pid = -1;
  }
  attached_.clear();
  nodes_.clear();  // namespaces (with their veth ends), cgroups, pins
  hub_.reset();    // the bridge and the hub ends of the veths
  if (!work_.empty() && std::getenv("MESHD_TEST_KEEP_LOGS") == nullptr) {
    std::error_code ec;
    fs::remove_all(work_, ec);
  }
  work_.clear();
}

void MeshCluster::make_identity(const std::string& d, const std::string& id, const std::string& dom,
                                bool foreign_ca) {
  fs::create_directories(d);
  std::string ca = ca_dir();
  if (foreign_ca) {
    ca = d + "/foreign-ca";
    run_checked(bin("meshctl") + " ca init --out " + ca);
  }
  run_checked(bin("meshctl") + " keys gen --out " + d);
  run_checked(bin("meshctl") + " ca sign --ca " + ca + " --pub " + d + "/node.pub --name " + id +
              " --domain " + dom + " --days 1 --backdate-minutes " +
              std::to_string(options_.cert_backdate_minutes) + " --out " + d + "/node.cert");
}

void MeshCluster::write_config(int i, const std::string& extra_yaml) {
  std::ostringstream y;
  const std::string d = dir(i);
  const bool foreign = std::find(options_.foreign_ca_nodes.begin(), options_.foreign_ca_nodes.end(),
                                 i) != options_.foreign_ca_nodes.end();
  // A foreign node trusts its own CA (else it could not even load its identity).
  const std::string ca = foreign ? d + "/foreign-ca" : ca_dir();
  y << "node:\n  name: " << name(i) << "\n  key: " << d << "/node.key\n  cert: " << d
    << "/node.cert\n  ca: " << ca << "/ca.pub\n  data_dir: " << d << "/data\n";
  if (auto n = options_.node_yaml.find(i); n != options_.node_yaml.end())
    y << "  " << n->second << "\n";
  y << "mesh:\n  listen: \"" << ip(i) << ":" << kMeshPort << "\"\n  peers: [";
  bool first = true;
  for (int j = 1; j <= size(); ++j) {
    if (j == i) continue;
    y << (first ? "" : ", ") << "\"" << ip(j) << ":" << kMeshPort << "\"";
    first = false;
  }
  y << "]\n  handshake_timeout_ms: " << options_.handshake_timeout_ms
    << "\n  idle_timeout_ms: " << options_.idle_timeout_ms << "\n";
  for (const auto& [k, v] : options_.mesh) y << "  " << k << ": " << v << "\n";
  y << "control:\n  socket: " << socket(i) << "\n";
  y << "metrics:\n  listen: \"127.0.0.1:9464\"\n";
  y << "enforcement:\n  backend: " << options_.backend << "\n  interfaces: ["
    << (options_.backend == "bpf" ? "eth0" : "") << "]\n  cgroup: " << cgroup(i).path()
    << "\n  pin_path: " << nodes_.at(static_cast<std::size_t>(i - 1)).pins->path() << "\n";
  y << "sensor:\n  feeds: [";
  if (options_.feeds.contains(i)) y << d << "/feed.txt";
  y << "]\n";
  if (auto s = options_.sensor_yaml.find(i); s != options_.sensor_yaml.end())
    y << "  " << s->second << "\n";
  y << "protected: [";
  for (std::size_t k = 0; k < options_.protected_prefixes.size(); ++k)
    y << (k ? ", " : "") << "\"" << options_.protected_prefixes[k] << "\"";
  y << "]\n";
  if (!options_.policy.empty()) {
    y << "policy:\n";
    for (const auto& [k, v] : options_.policy) y << "  " << k << ": " << v << "\n";
  }
  y << "log:\n  format: text\n  level: " << options_.log_level << "\n";
  y << extra_yaml;
  write_text(config_path(i), y.str());
  run_checked(bin("meshd") + " --check-config " + config_path(i));
}

void MeshCluster::start(int i) {
  Node& n = nodes_.at(static_cast<std::size_t>(i - 1));
  if (n.pid > 0) throw std::runtime_error(name(i) + " is already running");
  const std::string log = dir(i) + "/meshd.log";
  const std::string netns = "--net=" + n.ns->path();
  const std::string meshd = bin("meshd");
  const std::string config = config_path(i);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::setpgid(0, 0);
    // A test or bench that dies without its destructors must not leave daemons behind.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::execlp("nsenter", "nsenter", netns.c_str(), meshd.c_str(), "--config", config.c_str(),
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  n.pid = pid;
}

void MeshCluster::start_all() {
  for (int i = 1; i <= size(); ++i) {
    if (std::find(options_.not_started.begin(), options_.not_started.end(), i) !=
        options_.not_started.end())
      continue;
    start(i);
  }
}

void MeshCluster::kill(int i, int sig) {
  Node& n = nodes_.at(static_cast<std::size_t>(i - 1));
  if (n.pid <= 0) return;
  ::kill(n.pid, sig);
  if (!reap_within(n.pid, 5000)) {
    ::kill(n.pid, SIGKILL);
    reap_within(n.pid, 2000);
  }
  n.pid = -1;
}

bool MeshCluster::running(int i) {
  Node& n = nodes_.at(static_cast<std::size_t>(i - 1));
  if (n.pid <= 0) return false;
  int status = 0;
  if (::waitpid(n.pid, &status, WNOHANG) == n.pid) {
    n.pid = -1;
    return false;
  }
  return true;
}

bool MeshCluster::wait_status(int i, int timeout_ms) {
  return wait_until(
      [&] {
        if (!running(i)) return false;
        return !ctl_json(i, "status").is_null();
      },
      timeout_ms);
}

bool MeshCluster::wait_ready(int min_peers, int timeout_ms) {
  return wait_until(
      [&] {
        for (int i = 1; i <= size(); ++i) {
          if (nodes_[static_cast<std::size_t>(i - 1)].pid <= 0) continue;
          json s = ctl_json(i, "status");
          if (s.is_null() || s.value("peers", 0) < min_peers) return false;
        }
        return true;
      },
      timeout_ms);
}

CommandResult MeshCluster::ctl(int i, const std::string& args) const {
  return run(bin("meshctl") + " --socket " + quote(socket(i)) + " " + args + " 2>&1");
}

json MeshCluster::ctl_json(int i, const std::string& args) const {
  // stderr is not captured here: a meshctl error line must not end up in the JSON.
  CommandResult r =
      run(bin("meshctl") + " --socket " + quote(socket(i)) + " " + args + " --json 2>/dev/null");
  if (!r.ok()) return nullptr;
  json j = json::parse(r.output, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

std::vector<json> MeshCluster::events(int i, int limit) const {
  std::vector<json> out;
  CommandResult r = run(bin("meshctl") + " --socket " + quote(socket(i)) +
                        " events --json --limit " + std::to_string(limit) + " 2>/dev/null");
  std::istringstream lines(r.output);
  std::string line;
  while (std::getline(lines, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

std::optional<std::int64_t> MeshCluster::event_at(int i, const std::string& kind,
                                                  const std::string& prefix) const {
  for (const auto& e : events(i))
    if (e.value("event", "") == kind && e.value("prefix", "") == prefix)
      return e.value("at", std::int64_t{0});
  return std::nullopt;
}

json MeshCluster::block(int i, const std::string& prefix) const {
  json blocks = ctl_json(i, "blocks");
  if (!blocks.is_array()) return nullptr;
  for (const auto& b : blocks)
    if (b.value("prefix", "") == prefix) return b;
  return nullptr;
}

bool MeshCluster::enforced(int i, const std::string& prefix) const {
  json b = block(i, prefix);
  return b.is_object() && b.value("enforced", false);
}

std::string MeshCluster::metrics(int i) const {
  return run(netns_prefix(ns(i)) + "curl -sf --max-time 2 http://127.0.0.1:9464/metrics").output;
}

std::optional<double> MeshCluster::metric(int i, const std::string& sample) const {
  std::istringstream lines(metrics(i));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > sample.size() && line.compare(0, sample.size(), sample) == 0 &&
        line[sample.size()] == ' ')
      return std::stod(line.substr(sample.size() + 1));
  }
  return std::nullopt;
}

const NetNs& MeshCluster::attach(std::string_view base, const std::vector<std::string>& addresses) {
  auto ns = std::make_unique<NetNs>(base);
  const std::string veth = "x" + std::to_string(attached_.size());
  const std::string hub = "ip -n " + hub_->name() + " ";
  run_checked(hub + "link add " + veth + " type veth peer name eth0 netns " + ns->name());
  run_checked(hub + "link set " + veth + " master br0 up");
  for (const auto& a : addresses)
    run_checked("ip -n " + ns->name() + " addr add " + a + "/24 dev eth0");
  run_checked("ip -n " + ns->name() + " link set eth0 up");
  attached_.push_back(std::move(ns));
  return *attached_.back();
}

void MeshCluster::partition(const std::vector<int>& side) {
  const std::string hub = "ip -n " + hub_->name() + " ";
  if (run(hub + "link show br1").exit_code != 0)
    run_checked(hub + "link add br1 type bridge && " + hub + "link set br1 up");
  for (int i : side) run_checked(hub + "link set v" + std::to_string(i) + " master br1");
}

void MeshCluster::heal() {
  const std::string hub = "ip -n " + hub_->name() + " ";
  std::vector<int> moved;
  for (int i = 1; i <= size(); ++i) {
    const std::string v = "v" + std::to_string(i);
    if (run(hub + "link show " + v + " | grep -q 'master br0'").ok()) continue;
    run_checked(hub + "link set " + v + " master br0");
    moved.push_back(i);
  }
  if (static_l2_) add_static_fdb(moved);
}

void MeshCluster::add_static_fdb(const std::vector<int>& nodes) {
  if (nodes.empty()) return;
  std::ostringstream batch;
  for (int i : nodes) batch << "fdb replace " << mac(i) << " dev v" << i << " master static\n";
  const std::string file = work_ + "/fdb.batch";
  write_text(file, batch.str());
  run_checked("bridge -n " + hub_->name() + " -batch " + file);
}

void MeshCluster::set_link(int i, bool up) {
  run_checked("ip -n " + hub_->name() + " link set v" + std::to_string(i) + (up ? " up" : " down"));
}

void MeshCluster::set_loss(int percent) {
  for (int i = 1; i <= size(); ++i) {
    const std::string nft = "ip netns exec " + ns(i).name() + " nft ";
    run(nft + "delete table inet meshd_loss 2>/dev/null");
    if (percent <= 0) continue;
    run_checked(nft + "add table inet meshd_loss");
    run_checked(nft + "'add chain inet meshd_loss input { type filter hook input priority -10; }'");
    run_checked(nft + "add rule inet meshd_loss input iifname eth0 numgen random mod 100 '<' " +
                std::to_string(percent) + " drop");
  }
}

std::string MeshCluster::log_tail(int i, int lines) const {
  return run("tail -n " + std::to_string(lines) + " " + quote(dir(i) + "/meshd.log")).output;
}

std::string MeshCluster::logs(int lines) const {
  std::string out;
  for (int i = 1; i <= size(); ++i)
    out += "--- " + name(i) + " meshd.log ---\n" + log_tail(i, lines);
  return out;
}

OverlayReplay::OverlayReplay(const MeshCluster& mesh, const std::vector<std::vector<json>>& events)
    : n_(mesh.size()) {
  std::map<std::string, int> index;
  for (int i = 1; i <= n_; ++i) index[mesh.name(i)] = i - 1;
  for (std::size_t i = 0; i < events.size() && i < static_cast<std::size_t>(n_); ++i) {
    for (const auto& e : events[i]) {
      const std::string kind = e.value("event", "");
      if (kind != "peer_up" && kind != "peer_down") continue;
      auto peer = index.find(e.value("peer", ""));
      if (peer == index.end()) continue;
      changes_.push_back(
          {e.value("at", std::int64_t{0}), static_cast<int>(i), peer->second, kind == "peer_up"});
    }
  }
  std::stable_sort(changes_.begin(), changes_.end(),
                   [](const Change& a, const Change& b) { return a.at < b.at; });
}

OverlayReplay OverlayReplay::of(const MeshCluster& mesh) {
  std::vector<std::vector<json>> events;
  for (int i = 1; i <= mesh.size(); ++i) events.push_back(mesh.events(i));
  return OverlayReplay(mesh, events);
}

void OverlayReplay::apply(PeerSets& peers, const Change& c) {
  if (c.up)
    peers[static_cast<std::size_t>(c.node)].insert(c.peer);
  else
    peers[static_cast<std::size_t>(c.node)].erase(c.peer);
}

OverlayReplay::PeerSets OverlayReplay::at(std::int64_t t) const {
  PeerSets peers(static_cast<std::size_t>(n_));
  for (const auto& c : changes_) {
    if (c.at > t) break;
    apply(peers, c);
  }
  return peers;
}

int OverlayReplay::components(const PeerSets& peers, int* largest) {
  const std::size_t n = peers.size();
  std::vector<std::size_t> parent(n);
  for (std::size_t i = 0; i < n; ++i) parent[i] = i;
  auto find = [&](std::size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  for (std::size_t i = 0; i < n; ++i)
    for (int j : peers[i]) parent[find(i)] = find(static_cast<std::size_t>(j));
  std::map<std::size_t, int> sizes;
  for (std::size_t i = 0; i < n; ++i) sizes[find(i)]++;
  if (largest != nullptr) {
    *largest = 0;
    for (const auto& [root, size] : sizes) *largest = std::max(*largest, size);
  }
  return static_cast<int>(sizes.size());
}

std::vector<int> OverlayReplay::degrees(const PeerSets& peers) {
  PeerSets sym = peers;
  for (std::size_t i = 0; i < peers.size(); ++i)
    for (int j : peers[i]) sym[static_cast<std::size_t>(j)].insert(static_cast<int>(i));
  std::vector<int> out;
  for (const auto& s : sym) out.push_back(static_cast<int>(s.size()));
  return out;
}

std::int64_t OverlayReplay::first_when(std::int64_t from,
                                       const std::function<bool(const PeerSets&)>& pred) const {
  PeerSets peers(static_cast<std::size_t>(n_));
  for (std::size_t k = 0; k < changes_.size(); ++k) {
    apply(peers, changes_[k]);
    if (k + 1 < changes_.size() && changes_[k + 1].at == changes_[k].at) continue;
    if (changes_[k].at >= from && pred(peers)) return changes_[k].at;
  }
  return -1;
}

}  // namespace meshd::test
