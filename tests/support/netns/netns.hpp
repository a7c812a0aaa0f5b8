// RAII helpers for tests that need real kernel objects: network namespaces, veth pairs,
// cgroup v2 groups, bpffs pin directories, background processes. Every guard removes what
// it created in its destructor, also when an assertion failed half-way through a test.
//
// Names are unique per process (pid + counter), so parallel ctest processes never collide.
// Constructors throw std::runtime_error naming the failing command: gtest reports that as
// a test failure, and the guards constructed before it are still cleaned up.
//
// Usage:
//   TEST(X, Y) {
//     MESHD_SKIP_UNLESS_ROOT();
//     meshd::test::NetNs ns("cli");
//     meshd::test::VethPair veth("mv", ns, {"10.77.0.1/24", "10.77.0.2/24",
//                                            "fd77::1/64", "fd77::2/64"});
//     auto r = meshd::test::run_in_netns(ns, "ping -c1 -W1 10.77.0.1");
//   }
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

namespace meshd::test {

// True when running as uid 0 (netns, bpf and cgroup tests need it).
bool is_root();

// Skips the current test when not root. GTEST_SKIP only leaves the function it is written
// in, so use the macro in a test body, or `if (skip_unless_root()) return;` elsewhere
// (in a fixture's SetUp() plain `skip_unless_root();` is enough: gtest then skips the body).
bool skip_unless_root();
#define MESHD_SKIP_UNLESS_ROOT() \
  if (!::meshd::test::is_root()) GTEST_SKIP() << "needs root (netns / bpf / cgroup v2)"

// "<base>-<pid>-<n>", unique within this machine for the lifetime of this process.
std::string unique_name(std::string_view base);
// Interface-name variant: at most 15 bytes (IFNAMSIZ - 1). `base` should be <= 4 chars.
std::string unique_ifname(std::string_view base);

struct CommandResult {
  int exit_code = -1;  // exit status, or 128 + signal, or -1 when it could not be run
  std::string output;  // stdout and stderr interleaved
  bool ok() const { return exit_code == 0; }
};

// Runs `sh -c command`, capturing stdout+stderr.
CommandResult run(const std::string& command);
// Same, throwing std::runtime_error with the command and its output on non-zero exit.
std::string run_checked(const std::string& command);

// A named network namespace (`ip netns add`), loopback up. Deleted on destruction.
class NetNs {
 public:
  explicit NetNs(std::string_view base);
  ~NetNs();
  NetNs(const NetNs&) = delete;
  NetNs& operator=(const NetNs&) = delete;

  const std::string& name() const { return name_; }
  // /run/netns/<name>, for nsenter --net= or setns().
  std::string path() const { return "/run/netns/" + name_; }

 private:
  std::string name_;
};

// Runs `sh -c command` inside the namespace with `nsenter --net=/run/netns/NAME`, which
// keeps the host's /sys (bpffs, cgroup mounts) visible, unlike `ip netns exec`.
CommandResult run_in_netns(const NetNs& ns, const std::string& command);
// The command prefix to run something in the namespace: "nsenter --net=/run/netns/NAME ".
std::string netns_prefix(const NetNs& ns);

// Addresses for the two ends of a veth pair, in CIDR form; empty strings are skipped.
struct VethAddresses {
  std::string host_v4;  // e.g. "10.77.0.1/24"
  std::string peer_v4;  // e.g. "10.77.0.2/24"
  std::string host_v6;  // e.g. "fd77::1/64" (added with nodad: usable immediately)
  std::string peer_v6;
};

// A /30 (IPv4) and /64 (IPv6) for one veth pair, unique to this process and call:
// IPv4 from 100.64.0.0/10 and IPv6 from fd6d:6573::/32, indexed by (pid, counter), so
// parallel tests never route the same addresses. Addresses without prefix length.
struct TestSubnet {
  std::string host_v4, peer_v4;  // x.x.x.1 and x.x.x.2
  std::string host_v6, peer_v6;  // ...::1 and ...::2
  VethAddresses veth_addresses() const {
    return {host_v4 + "/30", peer_v4 + "/30", host_v6 + "/64", peer_v6 + "/64"};
  }
};
TestSubnet unique_subnet();

// A veth pair: the host end stays in the current namespace, the peer end is moved into
// `ns`; both are up with the given addresses. Deleting the host end removes both.
class VethPair {
 public:
  VethPair(std::string_view base, const NetNs& ns, const VethAddresses& addrs);
  ~VethPair();
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;

  const std::string& host_name() const { return host_; }
  const std::string& peer_name() const { return peer_; }
  // ifindex of the host end in the current namespace.
  int host_ifindex() const;

 private:
  std::string host_;
  std::string peer_;
};

// Mount point of the cgroup v2 hierarchy, from /proc/mounts ("/sys/fs/cgroup/unified" on
// hybrid hosts, "/sys/fs/cgroup" on unified ones). Throws if there is none.
std::string cgroup2_mount();

// A cgroup directly below the cgroup v2 mount. On destruction, processes still in it are
// moved back to the root cgroup and the directory is removed.
class TestCgroup {
 public:
  explicit TestCgroup(std::string_view base);
  // A child cgroup inside `parent` (e.g. one workload of a node whose cgroup meshd hooks):
  // destroy it before the parent.
  TestCgroup(const TestCgroup& parent, std::string_view base);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  // Absolute path, e.g. /sys/fs/cgroup/unified/meshd-test-123-0.
  const std::string& path() const { return path_; }
  // The kernel's cgroup id (bpf_get_current_cgroup_id()), which is the directory's inode.
  std::uint64_t id() const;
  // Moves a whole process (all its threads) into this cgroup.
  void add_pid(pid_t pid) const;

 private:
  std::string path_;
};

// Mounts bpffs at /sys/fs/bpf when nothing (or not bpffs) is mounted there.
void ensure_bpffs();

// A unique directory under /sys/fs/bpf for pinned maps/programs; on destruction all pins
// inside it (recursively) are unlinked and the directory removed.
class BpfPinDir {
 public:
  explicit BpfPinDir(std::string_view base);
  ~BpfPinDir();
  BpfPinDir(const BpfPinDir&) = delete;
  BpfPinDir& operator=(const BpfPinDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A background `sh -c command` (e.g. a listener inside a namespace: pass
// netns_prefix(ns) + "..."). It runs in its own process group; destruction kills the group
// with SIGKILL and reaps it.
class BackgroundProcess {
 public:
  explicit BackgroundProcess(const std::string& command);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Forks a child that names itself `comm` (prctl PR_SET_NAME, <= 15 bytes), moves itself
// into `cgroup` (when not null), runs `body` and exits with its return value (0..255).
// Returns the child's exit code, or 128 + signal. `child_pid`, when given, receives the
// child's pid (the pid the kernel hooks see as tgid). Waits at most `timeout_ms`, then
// kills the child and returns -1.
int run_in_child(const TestCgroup* cgroup, std::string_view comm, const std::function<int()>& body,
                 pid_t* child_pid = nullptr, int timeout_ms = 10000);

// Options for run_child: where the child runs and what it is called.
struct ChildOptions {
  const TestCgroup* cgroup = nullptr;  // join this cgroup first (when not null)
  const NetNs* netns = nullptr;        // then setns() into this network namespace
  std::string comm = "meshd-test";     // prctl PR_SET_NAME (<= 15 bytes)
  int timeout_ms = 10000;              // kill the child after this; run_child returns -1
};
// General form of run_in_child: body runs in a forked child placed as `options` says.
int run_child(const ChildOptions& options, const std::function<int()>& body,
              pid_t* child_pid = nullptr);

// A TCP listener (a forked child, optionally inside `ns`) that accepts and closes
// connections on `address` ("10.1.0.2", "fd00::2", "::" ...) and `port`, until destroyed.
// The constructor returns once the socket is listening.
class TcpListener {
 public:
  TcpListener(const NetNs* ns, const std::string& address, std::uint16_t port);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

 private:
  pid_t pid_ = -1;
};

// Blocking-with-timeout TCP connect from the calling process; 0 on success, else the errno
// (EPERM when a cgroup hook denied it, ETIMEDOUT when packets were dropped, ...).
int tcp_connect(const std::string& address, std::uint16_t port, int timeout_ms = 2000);
// One UDP datagram via sendto(); 0 on success, else the errno.
int udp_sendto(const std::string& address, std::uint16_t port);

// A forked child, placed as `where` says (cgroup, netns), that runs until stop(): a sender
// sends one UDP datagram to address:port about every millisecond (from `source` when given)
// and counts sendto() outcomes; a receiver binds address:port and counts what arrives.
// Counts live in shared memory, so they can be read while the child runs. For checking
// that enforcement never lapses during some operation: start probes, do it, stop them.
struct UdpProbeCounts {
  std::uint64_t sent = 0;      // sendto() succeeded (the packet left the socket)
  std::uint64_t denied = 0;    // sendto() failed with EPERM (a cgroup hook denied it)
  std::uint64_t failed = 0;    // sendto() failed otherwise
  std::uint64_t received = 0;  // datagrams received (receiver)
};
class UdpProbe {
 public:
  enum class Kind { send, receive };
  // Returns once the child's socket is set up (bound, for a receiver); throws
  // std::runtime_error if it is not within 5 s.
  UdpProbe(Kind kind, ChildOptions where, const std::string& address, std::uint16_t port,
           const std::string& source = "");
  ~UdpProbe();
  UdpProbe(const UdpProbe&) = delete;
  UdpProbe& operator=(const UdpProbe&) = delete;

  UdpProbeCounts counts() const;  // so far
  UdpProbeCounts stop();          // stops the child and returns the final counts (idempotent)

 private:
  struct Shared;
  Shared* shared_ = nullptr;
  std::thread child_;
};

// Polls `predicate` every 20 ms until it is true or `timeout_ms` passed; returns the last
// value. For waiting on listeners, neighbour discovery, etc., without fixed sleeps.
bool wait_until(const std::function<bool()>& predicate, int timeout_ms = 5000);

}  // namespace meshd::test
