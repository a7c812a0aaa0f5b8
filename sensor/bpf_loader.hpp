// Owner of meshd's BPF programs and their attachments (skeleton of bpf/meshd.bpf.c).
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
// One log line (spdlog, info) says what was attached where, in which mode, and what was
// taken over from a previous run.
//
// Attachments outlive the process when `pin_path` is set (the daemon's case): blocks live in
// the kernel with their own expiry, so a daemon that exits, crashes or is being upgraded
// leaves the current blocks enforced until they expire, never a permanent block.
//   - Links (cgroup, XDP, tcx) are pinned under <pin_path>/links/ (cgroup_connect4,
//     xdp_<ifname>, tcx_<ifname>, ...; bpffs forbids '.' in names, so an interface name's
//     '.' and '%' appear as %2e and %25). Closing the loader closes its descriptors only.
//   - A clsact filter has a fixed handle and priority (kTcHandle, kTcPriority) and is
//     recorded as the directory <pin_path>/clsact/<ifname>; it stays until deleted.
// Take-over on load(): a pinned link for the same hook and target is switched to the new
// program in place (BPF_LINK_UPDATE: atomic, no moment without a program); a clsact filter
// is replaced in place (BPF_TC_F_REPLACE). Only when an update is refused is a second link
// attached first and the old one detached after (cgroup, tcx: both run for a moment), or,
// for XDP, which takes one program per interface, the old link detached just before the new
// one is attached (logged as a warning). After everything is attached, pinned links and
// clsact filters that this configuration no longer wants (an interface or the cgroup
// dropped from the config, tcx in place of clsact, a link whose interface or cgroup is
// gone) are detached and unpinned. So each hook carries exactly one meshd program.
// detach_pinned() removes everything (uninstall: `meshd --detach`).
//
// Without `pin_path` (BPF_PROG_TEST_RUN tests, benchmarks) nothing is pinned or taken over:
// destruction detaches every program (links closed, tc filters removed, a clsact qdisc
// removed only if this loader created it).
//
// When load() fails, attachments it created anew are detached again; ones it took over
// stay attached (they were enforcing before; they may now run the new program).
//
// Not thread-safe; move-only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "meshd/common/result.hpp"

namespace meshd::sensor {

enum class XdpMode { native, generic };
enum class TcMode { tcx, clsact };

// Identity of meshd's clsact egress filter on every interface.
inline constexpr std::uint32_t kTcHandle = 0x6d657368;  // "mesh"
inline constexpr std::uint32_t kTcPriority = 0x4d45;    // fixed; not 1 (Cilium) nor 0xc000

struct BpfLoaderConfig {
  // bpffs directory for the persistent maps and the pinned links, created if missing (must
  // be on bpffs). Empty: nothing is pinned and everything detaches with the loader
  // (BPF_PROG_TEST_RUN tests, benchmarks).
  std::string pin_path = "/sys/fs/bpf/meshd";
  // cgroup v2 directory for the connect/sendmsg hooks. Empty: those hooks are not attached.
  std::string cgroup_path;
  // Interfaces for XDP ingress and TC egress (by name).
  std::vector<std::string> interfaces;
  bool attach_xdp = true;
  bool attach_tc = true;
  // Skip probing and use this mode (e.g. generic XDP for tests that need it). Applies to new
  // attachments; an XDP link taken over keeps its mode (see BpfAttachment::mode).
  bool force_xdp_generic = false;
  bool force_tc_clsact = false;
};

// One attachment made by the loader, for logs and `meshctl status`.
struct BpfAttachment {
  std::string program;  // e.g. "meshd_xdp_ingress"
  std::string target;   // cgroup path or interface name
  std::string mode;     // "cgroup link", "xdp native", "xdp generic", "tcx", "clsact"
  // Found attached by a previous run (pinned link or clsact filter) and switched to this
  // loader's program in place, rather than attached anew.
  bool taken_over = false;
};

// Which optional kernel features the loader found (probed by trying them).
struct BpfFeatures {
  bool tcx = false;         // TC attached through tcx links on at least one interface
  bool xdp_native = false;  // XDP attached in driver mode on at least one interface
};

// What detach_pinned() removed.
struct BpfDetachReport {
  std::size_t links = 0;       // pinned links detached and unpinned
  std::size_t tc_filters = 0;  // clsact filters deleted
  std::size_t maps = 0;        // pinned maps unpinned (their blocks are gone)
  bool pin_dir_removed = false;
  std::string describe() const;  // "3 links, 1 tc filter, 7 maps; /sys/fs/bpf/x removed"
};

class BpfLoader {
 public:
  // Loads and attaches as configured (taking over what a previous run with the same
  // pin_path left, see above). Errors name the step and the object (pin path, interface,
  // cgroup) and carry libbpf's errno text.
  static Result<BpfLoader> load(const BpfLoaderConfig& config);

  // Removes everything loaders with this pin path left in the kernel: detaches and unpins
  // the pinned links, deletes the recorded clsact filters (the clsact qdisc stays: other
  // tools' filters may hang on it), unpins the maps and removes the pin directory if that
  // leaves it empty. For uninstalling (`meshd --detach`); no loader with this pin path
  // should be running (it would keep running with nothing attached). A missing pin
  // directory is not an error (nothing to do).
  static Result<BpfDetachReport> detach_pinned(const std::string& pin_path);

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
  // True when the attachments outlive this loader (pin_path set).
  bool persistent() const;
  const std::vector<BpfAttachment>& attachments() const;
  BpfFeatures features() const;
  // "connect4 -> /sys/fs/cgroup (cgroup link); meshd_xdp_ingress -> eth0 (xdp native, taken
  // over); ..."
  std::string describe() const;

 private:
  struct Impl;
  explicit BpfLoader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshd::sensor
