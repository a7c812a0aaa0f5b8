// RAII owner of meshd's BPF programs and their attachments (skeleton of bpf/meshd.bpf.c).
//
// BpfLoader::load() opens the skeleton, points the persistent maps (block tries, exact-match
// maps, IPv4 pre-filters, counters) at their pin files under `pin_path` (reusing them when they
// exist, so blocks survive a daemon restart), loads the programs, and attaches:
//   - connect4/connect6/sendmsg4/sendmsg6 to the cgroup v2 directory `cgroup_path`
//     (bpf_link, multi-attach: other programs on the cgroup keep running);
//   - XDP ingress on every interface (bpf_link; native driver mode when the driver
//     supports it, generic/skb mode otherwise);
//   - TC egress on every interface (tcx bpf_link when the kernel has tcx, otherwise a
//     clsact qdisc + direct-action filter via libbpf's bpf_tc_* API).
// One log line (spdlog, info) says what was attached where and in which mode.
//
// Destruction detaches every program it attached (links closed, tc filters removed, a
// clsact qdisc removed only if this loader created it). The pinned maps stay: they are
// the state that survives restarts; only BpfEnforcer and operators remove entries.
//
// Not thread-safe; move-only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "meshd/common/result.hpp"

namespace meshd::sensor {

enum class XdpMode { native, generic };
enum class TcMode { tcx, clsact };

struct BpfLoaderConfig {
  // bpffs directory for the persistent maps, created if missing (must be on bpffs).
  // Empty: nothing is pinned (BPF_PROG_TEST_RUN tests, benchmarks).
  std::string pin_path = "/sys/fs/bpf/meshd";
  // cgroup v2 directory for the connect/sendmsg hooks. Empty: those hooks are not attached.
  std::string cgroup_path;
  // Interfaces for XDP ingress and TC egress (by name).
  std::vector<std::string> interfaces;
  bool attach_xdp = true;
  bool attach_tc = true;
  // Skip probing and use this mode (e.g. generic XDP for tests that need it).
  bool force_xdp_generic = false;
  bool force_tc_clsact = false;
};

// One attachment made by the loader, for logs and `meshctl status`.
struct BpfAttachment {
  std::string program;  // e.g. "meshd_xdp_ingress"
  std::string target;   // cgroup path or interface name
  std::string mode;     // "cgroup link", "xdp native", "xdp generic", "tcx", "clsact"
};

// Which optional kernel features the loader found (probed by trying them).
struct BpfFeatures {
  bool tcx = false;         // TC attached through tcx links on at least one interface
  bool xdp_native = false;  // XDP attached in driver mode on at least one interface
};

class BpfLoader {
 public:
  // Loads and attaches as configured. Errors name the step and the object (pin path,
  // interface, cgroup) and carry libbpf's errno text; nothing stays attached on error.
  static Result<BpfLoader> load(const BpfLoaderConfig& config);

  BpfLoader(BpfLoader&&) noexcept;
  BpfLoader& operator=(BpfLoader&&) noexcept;
  ~BpfLoader();

  // Map fds, owned by the loader (valid while it lives; dup them to keep them longer).
  int block_v4_fd() const;
  int block_v6_fd() const;
  int exact_v4_fd() const;  // exact-match maps for the commonest prefix lengths
  int exact_v6_fd() const;
  int v4_filter_fd() const;       // IPv4 pre-filter bitset (see meshd_shared.h)
  int v4_trie_filter_fd() const;  // the same for the IPv4 trie's entries only
  int counters_fd() const;
  int events_fd() const;

  // Program fds, for BPF_PROG_TEST_RUN and benchmarks.
  int xdp_prog_fd() const;
  int tc_prog_fd() const;

  const std::string& pin_path() const;
  const std::vector<BpfAttachment>& attachments() const;
  BpfFeatures features() const;
  // "connect4 -> /sys/fs/cgroup/x (cgroup link); meshd_xdp_ingress -> eth0 (xdp native); ..."
  std::string describe() const;

 private:
  struct Impl;
  explicit BpfLoader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::sensor
