// A real meshd fleet on one machine, for netns tests and mesh benchmarks.
//
// MeshCluster creates a "hub" network namespace holding a bridge, and N node namespaces,
// each joined to the bridge by a veth whose inner end is `eth0` (10.213.0.(10+i)/24). Every
// node gets its own cgroup (below the cgroup v2 mount), bpffs pin directory, data dir,
// control socket and config, and a key certified by the cluster's fleet CA (made with
// meshctl). meshd runs under `nsenter --net=/run/netns/NAME` (not `ip netns exec`, which
// would hide the host's bpffs and cgroup mounts). Extra namespaces (an "outside" network,
// an attacker) can be attached to the bridge.
//
// Everything is removed on destruction, also when a test failed half-way: daemons get
// SIGTERM (then SIGKILL), namespaces/cgroups/pins are RAII guards from meshd_test_netns.
// Names carry the pid, so parallel ctest processes never collide; the addresses live in
// private namespaces, so they never collide either.
//
// Binaries: MESHD_TEST_BIN_DIR (meshd, meshctl) is compiled in by CMake; the environment
// variable of the same name, when set, overrides it (e.g. to benchmark an older build).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/support/netns/netns.hpp"

namespace meshd::test {

struct MeshOptions {
  int nodes = 5;
  std::string backend = "dryrun";  // enforcement.backend of every node
  // Failure domain of node i (1-based) = domains[(i - 1) % size].
  std::vector<std::string> domains{"zone-a", "zone-b", "zone-c"};
  int handshake_timeout_ms = 2000;
  int idle_timeout_ms = 60000;
  // Extra "key: value" lines of each section (no indentation), e.g. mesh["origin_burst"].
  std::map<std::string, std::string> mesh;
  std::map<std::string, std::string> policy;
  // One bench option's "KEY=VALUE" into `section` (mesh or policy); false if it has no key or '='.
  static bool set_line(std::map<std::string, std::string>& section, const std::string& kv) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    section[kv.substr(0, eq)] = kv.substr(eq + 1);
    return true;
  }
  std::vector<std::string> protected_prefixes;
  // Threat-feed file contents per node (1-based); nodes without an entry get no feed.
  std::map<int, std::string> feeds;
  // Extra lines of the sensor section per node (1-based), e.g. "crowdsec: {url: ...}".
  std::map<int, std::string> sensor_yaml;
  // Nodes whose cert comes from a different CA (they must not be able to join).
  std::vector<int> foreign_ca_nodes;
  // Nodes that are not started by start_all() (start them yourself).
  std::vector<int> not_started;
  std::string log_level = "info";
  // Certs start this many minutes before now (meshctl ca sign --backdate-minutes), for nodes
  // whose clocks run behind (node.test_clock_offset_ms).
  int cert_backdate_minutes = 0;
  // Extra "key: value" line of node i's `node` section (1-based), e.g.
  // node_yaml[5] = "test_clock_offset_ms: -600000".
  std::map<int, std::string> node_yaml;
  // Static layer 2 for large meshes: every node namespace gets a permanent neighbour (ARP)
  // entry for every other node, the hub bridge a static FDB entry for every node's MAC, and
  // IPv6 is off on the mesh links (no router solicitations, DAD or MLD reports at link-up).
  // Why: the kernel's IPv4 neighbour table is one table for ALL namespaces of the host, with
  // host-wide limits (net.ipv4.neigh.default.gc_thresh3, 1024 by default). A full mesh of 100
  // nodes needs up to 100 x 99 = 9,900 resolved entries, so ARP fails with "neighbor table
  // overflow" (dmesg), SYNs are dropped before they leave and dials time out: the harness, not
  // the daemons, would set the cold-start figures. Permanent entries do not count against
  // gc_thresh3, and no machine-wide sysctl is changed. (A fleet of separate machines has one
  // table per machine.) Unset: on from kStaticL2FromNodes nodes (24 x 23 = 552 entries is
  // above gc_thresh2 = 512, where the kernel starts evicting; other tests on the host share the
  // table too). Namespaces attached later (attach()) still use ARP, and a partition()ed port
  // relearns its MAC on the other bridge.
  std::optional<bool> static_l2;
  static constexpr int kStaticL2FromNodes = 24;
};

class MeshCluster {
 public:
  // Builds namespaces, bridge, cgroups, pins, identities and configs; starts nothing.
  // Throws std::runtime_error naming the failing command.
  explicit MeshCluster(MeshOptions options);
  ~MeshCluster();
  MeshCluster(const MeshCluster&) = delete;
  MeshCluster& operator=(const MeshCluster&) = delete;

  int size() const { return options_.nodes; }
  static std::string ip(int node) { return "10.213.0." + std::to_string(10 + node); }
  // MAC of the node's eth0 (locally administered, from the node index).
  static std::string mac(int node);
  bool static_l2() const { return static_l2_; }
  static constexpr int kMeshPort = 7946;
  std::string name(int node) const { return "node" + std::to_string(node); }
  std::string domain(int node) const;
  const NetNs& ns(int node) const { return *nodes_.at(node - 1).ns; }
  const TestCgroup& cgroup(int node) const { return *nodes_.at(node - 1).cgroup; }
  // The node's enforcement.pin_path (a bpffs directory removed with the cluster).
  const std::string& pin_path(int node) const { return nodes_.at(node - 1).pins->path(); }
  std::string dir(int node) const;  // the node's directory: keys, config, data, log
  std::string socket(int node) const { return dir(node) + "/ctl.sock"; }
  std::string config_path(int node) const { return dir(node) + "/config.yaml"; }
  std::string ca_dir() const { return work_ + "/ca"; }
  const std::string& work_dir() const { return work_; }
  static std::string bin(const std::string& tool);  // MESHD_TEST_BIN_DIR/tool

  // Daemons. start() forks `nsenter --net=... meshd --config ...`, stderr appended to
  // dir(node)/meshd.log. kill() sends `sig` and reaps the process.
  void start(int node);
  void start_all();
  void kill(int node, int sig = SIGKILL);
  bool running(int node);
  pid_t pid(int node) const { return nodes_.at(node - 1).pid; }

  // Polls until every started node answers `status` with >= min_peers peers.
  bool wait_ready(int min_peers, int timeout_ms = 20000);
  // Polls until node answers `status` (after a (re)start).
  bool wait_status(int node, int timeout_ms = 10000);

  // meshctl --socket <node's socket> <args>. ctl_json appends --json and parses the answer
  // (null when meshctl failed or printed no JSON).
  CommandResult ctl(int node, const std::string& args) const;
  nlohmann::json ctl_json(int node, const std::string& args) const;
  // `events --json --limit N` as a list of objects.
  std::vector<nlohmann::json> events(int node, int limit = 2000) const;
  // First event of `kind` on `prefix` at node: its "at" (Unix ms).
  std::optional<std::int64_t> event_at(int node, const std::string& kind,
                                       const std::string& prefix) const;
  // `blocks --json` entry for prefix, or null.
  nlohmann::json block(int node, const std::string& prefix) const;
  bool enforced(int node, const std::string& prefix) const;

  // GET /metrics inside the node's namespace; value of the sample whose name (with labels,
  // exactly as printed, e.g. `meshd_envelopes_refused_total{reason="bad_signature"}`) is
  // `sample`, or nullopt.
  std::string metrics(int node) const;
  std::optional<double> metric(int node, const std::string& sample) const;

  // Attaches a new namespace (owned by the cluster) to the bridge with the given addresses
  // (10.213.0.x, without prefix length), e.g. an "outside" network or an attacker.
  const NetNs& attach(std::string_view base, const std::vector<std::string>& addresses);

  // Faults. partition() moves the hub ends of `side`'s veths onto a second bridge: the nodes
  // of `side` still reach each other, the rest still reach each other, nothing crosses. heal()
  // puts every veth back on the first bridge.
  void partition(const std::vector<int>& side);
  void heal();
  // Takes node's link to the bridge down or up again (the hub end of its veth).
  void set_link(int node, bool up);
  // Drops `percent` % of the packets arriving on eth0 in every node's namespace (nft table
  // inet meshd_loss, `numgen random mod 100 < percent drop`); 0 removes the tables. The
  // tables live in the node namespaces, so they go with the cluster.
  void set_loss(int percent);

  // Makes a key + cert for `id` in `domain` signed by this cluster's CA (or, when
  // foreign, by a CA of its own) under `dir`: dir/node.key, dir/node.pub, dir/node.cert.
  void make_identity(const std::string& dir, const std::string& id, const std::string& domain,
                     bool foreign_ca = false);

  // Last lines of each node's log, for failure messages.
  std::string log_tail(int node, int lines = 15) const;
  std::string logs(int lines = 15) const;

  // Rewrites node's config (e.g. to change its policy) from the options plus `extra_yaml`.
  void write_config(int node, const std::string& extra_yaml = "");

 private:
  struct Node {
    std::unique_ptr<NetNs> ns;
    std::unique_ptr<TestCgroup> cgroup;
    std::unique_ptr<BpfPinDir> pins;
    pid_t pid = -1;
  };

  // Static FDB entries of nodes' MACs on br0 (again after heal(): a port that leaves the
  // bridge loses its entries).
  void add_static_fdb(const std::vector<int>& nodes);

  MeshOptions options_;
  bool static_l2_ = false;
  std::string work_;
  std::unique_ptr<NetNs> hub_;
  std::vector<Node> nodes_;
  std::vector<std::unique_ptr<NetNs>> attached_;
};

// The overlay of a cluster at any past moment, rebuilt from every node's peer_up / peer_down
// events (the daemons' own Unix-ms timestamps; all nodes share the host clock). Peers are
// node indices 0..size-1 (node i+1).
class OverlayReplay {
 public:
  using PeerSets = std::vector<std::set<int>>;
  // events[i] = node i+1's events (any kinds; see MeshCluster::events).
  OverlayReplay(const MeshCluster& mesh, const std::vector<std::vector<nlohmann::json>>& events);
  // Fetches every node's events and builds the replay.
  static OverlayReplay of(const MeshCluster& mesh);

  // Peer sets of every node after every event with at <= t.
  PeerSets at(std::int64_t t) const;
  // Connected components of the undirected graph (an edge if either end lists the other);
  // `largest` receives the size of the largest one.
  static int components(const PeerSets& peers, int* largest = nullptr);
  // Degree of each node in that undirected graph.
  static std::vector<int> degrees(const PeerSets& peers);
  // First event time >= from at which pred(peers) holds (checked after each group of events
  // with one timestamp), or -1.
  std::int64_t first_when(std::int64_t from,
                          const std::function<bool(const PeerSets&)>& pred) const;
  std::size_t size() const { return changes_.size(); }

 private:
  struct Change {
    std::int64_t at;
    int node, peer;
    bool up;
  };
  static void apply(PeerSets& peers, const Change& c);
  int n_;
  std::vector<Change> changes_;
};

}  // namespace meshd::test
