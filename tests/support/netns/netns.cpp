#include "tests/support/netns/netns.hpp"

#include "tests/support/netns/leftovers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <linux/magic.h>

namespace meshd::test {
namespace {

std::atomic<unsigned> g_counter{0};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.flush();
  if (!f) throw std::runtime_error("cannot write '" + text + "' to " + path);
}

}  // namespace

bool is_root() {
  return ::geteuid() == 0;
}

bool skip_unless_root() {
  if (is_root()) return false;
  // GTEST_SKIP() expands to a `return`, so it lives in a lambda of its own.
  [] { GTEST_SKIP() << "needs root (netns / bpf / cgroup v2)"; }();
  return true;
}

std::string unique_name(std::string_view base) {
  return std::string(base) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(g_counter.fetch_add(1));
}

std::string unique_ifname(std::string_view base) {
  // base(<=4) + pid(<=7) + counter in base 36 (<=4 for any sane test) = 15 at most.
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  unsigned n = g_counter.fetch_add(1);
  std::string suffix;
  do {
    suffix.insert(suffix.begin(), kDigits[n % 36]);
    n /= 36;
  } while (n != 0);
  std::string name = std::string(base.substr(0, 4)) + std::to_string(::getpid()) + suffix;
  if (name.size() > 15) name = name.substr(name.size() - 15);
  return name;
}

CommandResult run(const std::string& command) {
  CommandResult result;
  std::string full = "(" + command + ") 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  int status = ::pclose(pipe);
  if (status == -1) return result;
  if (WIFEXITED(status))
    result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    result.exit_code = 128 + WTERMSIG(status);
  return result;
}

std::string run_checked(const std::string& command) {
  CommandResult r = run(command);
  if (!r.ok()) {
    throw std::runtime_error("command failed (exit " + std::to_string(r.exit_code) +
                             "): " + command + "\n" + r.output);
  }
  return r.output;
}

// ---- NetNs ----------------------------------------------------------------------------

NetNs::NetNs(std::string_view base) : name_(unique_name(base)) {
  note_leftover(Leftover::netns, name_, true);
  run_checked("ip netns add " + name_);
  try {
    run_checked(netns_prefix(*this) + "ip link set lo up");
  } catch (...) {
    run("ip netns del " + name_);
    throw;
  }
}

NetNs::~NetNs() {
  run("ip netns del " + name_);
  note_leftover(Leftover::netns, name_, false);
}

std::string netns_prefix(const NetNs& ns) {
  return "nsenter --net=" + ns.path() + " ";
}

CommandResult run_in_netns(const NetNs& ns, const std::string& command) {
  // Quote for sh -c: wrap in single quotes, escaping embedded ones.
  std::string quoted = "'";
  for (char c : command) {
    if (c == '\'')
      quoted += "'\\''";
    else
      quoted += c;
  }
  quoted += "'";
  return run(netns_prefix(ns) + "sh -c " + quoted);
}

TestSubnet unique_subnet() {
  static std::atomic<unsigned> subnet_counter{0};
  // 2^20 /30 subnets in 100.64.0.0/10; 16 per process before an index repeats.
  const unsigned index =
      ((static_cast<unsigned>(::getpid()) << 4) | (subnet_counter.fetch_add(1) & 0xf)) & 0xfffff;
  const std::uint32_t base = 0x64400000u + (index << 2);  // 100.64.0.0 + index * 4
  auto v4 = [](std::uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
           std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
  };
  char v6[64];
  std::snprintf(v6, sizeof v6, "fd6d:6573:%x:%x::", index >> 16, index & 0xffff);
  return TestSubnet{v4(base + 1), v4(base + 2), std::string(v6) + "1", std::string(v6) + "2"};
}

// ---- VethPair -------------------------------------------------------------------------

VethPair::VethPair(std::string_view base, const NetNs& ns, const VethAddresses& addrs)
    : host_(unique_ifname(base)), peer_(unique_ifname(base)) {
  note_leftover(Leftover::link, host_, true);
  run_checked("ip link add " + host_ + " type veth peer name " + peer_);
  try {
    run_checked("ip link set " + peer_ + " netns " + ns.name());
    const std::string in_ns = netns_prefix(ns);
    if (!addrs.host_v4.empty()) run_checked("ip addr add " + addrs.host_v4 + " dev " + host_);
    if (!addrs.host_v6.empty()) {
      run_checked("ip -6 addr add " + addrs.host_v6 + " dev " + host_ + " nodad");
    }
    if (!addrs.peer_v4.empty()) {
      run_checked(in_ns + "ip addr add " + addrs.peer_v4 + " dev " + peer_);
    }
    if (!addrs.peer_v6.empty()) {
      run_checked(in_ns + "ip -6 addr add " + addrs.peer_v6 + " dev " + peer_ + " nodad");
    }
    run_checked("ip link set " + host_ + " up");
    run_checked(in_ns + "ip link set " + peer_ + " up");
  } catch (...) {
    run("ip link del " + host_);
    throw;
  }
}

VethPair::~VethPair() {
  run("ip link del " + host_);
  note_leftover(Leftover::link, host_, false);
}

int VethPair::host_ifindex() const {
  std::ifstream f("/sys/class/net/" + host_ + "/ifindex");
  int idx = 0;
  f >> idx;
  if (!f || idx <= 0) throw std::runtime_error("no ifindex for " + host_);
  return idx;
}

// ---- cgroup v2 ------------------------------------------------------------------------

std::string cgroup2_mount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    fields >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  throw std::runtime_error("no cgroup2 mount in /proc/mounts");
}

TestCgroup::TestCgroup(std::string_view base) : path_(cgroup2_mount() + "/" + unique_name(base)) {
  note_leftover(Leftover::cgroup, path_, true);
  if (::mkdir(path_.c_str(), 0755) != 0) {
    throw std::runtime_error("mkdir " + path_ + ": " + std::strerror(errno));
  }
}

TestCgroup::TestCgroup(const TestCgroup& parent, std::string_view base)
    : path_(parent.path() + "/" + unique_name(base)) {
  note_leftover(Leftover::cgroup, path_, true);
  if (::mkdir(path_.c_str(), 0755) != 0) {
    throw std::runtime_error("mkdir " + path_ + ": " + std::strerror(errno));
  }
}

TestCgroup::~TestCgroup() {
  // A cgroup with live members cannot be removed: move them to the root first. Retry a few
  // times because exiting processes can linger as members for a moment.
  const std::string root_procs = cgroup2_mount() + "/cgroup.procs";
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::ifstream procs(path_ + "/cgroup.procs");
    std::string pid;
    while (procs >> pid) {
      std::ofstream root(root_procs);
      root << pid;
    }
    if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) {
      note_leftover(Leftover::cgroup, path_, false);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::fprintf(stderr, "netns.hpp: could not remove cgroup %s: %s\n", path_.c_str(),
               std::strerror(errno));
}

std::uint64_t TestCgroup::id() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) throw std::runtime_error("stat " + path_);
  return st.st_ino;
}

void TestCgroup::add_pid(pid_t pid) const {
  write_file(path_ + "/cgroup.procs", std::to_string(pid));
}

// ---- bpffs ----------------------------------------------------------------------------

void ensure_bpffs() {
  struct statfs fs {};
  if (::statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return;
  ::mkdir("/sys/fs/bpf", 0755);
  if (::mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0) {
    // A parallel test may have mounted it between our check and our mount.
    if (::statfs("/sys/fs/bpf", &fs) == 0 && fs.f_type == BPF_FS_MAGIC) return;
    throw std::runtime_error(std::string("mount bpffs at /sys/fs/bpf: ") + std::strerror(errno));
  }
}

BpfPinDir::BpfPinDir(std::string_view base) {
  ensure_bpffs();
  path_ = "/sys/fs/bpf/" + unique_name(base);
  note_leftover(Leftover::pin_dir, path_, true);
  if (::mkdir(path_.c_str(), 0700) != 0) {
    throw std::runtime_error("mkdir " + path_ + ": " + std::strerror(errno));
  }
}

BpfPinDir::~BpfPinDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);  // unlinking a pin drops the pin's reference
  if (ec) std::fprintf(stderr, "netns.hpp: remove %s: %s\n", path_.c_str(), ec.message().c_str());
  note_leftover(Leftover::pin_dir, path_, false);
}

// ---- processes ------------------------------------------------------------------------

BackgroundProcess::BackgroundProcess(const std::string& command) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also from the parent, so the kill below cannot race the child
}

BackgroundProcess::~BackgroundProcess() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

int run_in_child(const TestCgroup* cgroup, std::string_view comm, const std::function<int()>& body,
                 pid_t* child_pid, int timeout_ms) {
  ChildOptions options;
  options.cgroup = cgroup;
  options.comm = std::string(comm);
  options.timeout_ms = timeout_ms;
  return run_child(options, body, child_pid);
}

namespace {

// In a freshly forked child: join cgroup and netns as asked. Returns 0 or an errno.
int place_child(const TestCgroup* cgroup, const NetNs* netns) {
  if (cgroup != nullptr) {
    std::ofstream procs(cgroup->path() + "/cgroup.procs");
    procs << ::getpid();
    procs.flush();
    if (!procs) return EACCES;
  }
  if (netns != nullptr) {
    int fd = ::open(netns->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = ::setns(fd, CLONE_NEWNET);
    int err = errno;
    ::close(fd);
    if (rc != 0) return err;
  }
  return 0;
}

bool to_sockaddr(const std::string& address, std::uint16_t port, sockaddr_storage& ss,
                 socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  auto* a4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof *a4;
    return true;
  }
  if (::inet_pton(AF_INET6, address.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof *a6;
    return true;
  }
  return false;
}

}  // namespace

int run_child(const ChildOptions& options, const std::function<int()>& body, pid_t* child_pid) {
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(ready[0]);
    std::string name = options.comm.substr(0, 15);
    ::prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
    int err = place_child(options.cgroup, options.netns);
    char status = err == 0 ? 0 : 1;
    ssize_t w = ::write(ready[1], &status, 1);
    (void)w;
    ::close(ready[1]);
    if (err != 0) ::_exit(126);
    int rc = body();
    std::fflush(nullptr);
    ::_exit(rc & 0xff);
  }
  ::close(ready[1]);
  char status = 1;
  ssize_t r = ::read(ready[0], &status, 1);
  ::close(ready[0]);
  if (child_pid != nullptr) *child_pid = pid;

  int wstatus = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
  while (true) {
    pid_t w = ::waitpid(pid, &wstatus, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wstatus, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (r != 1 || status != 0) {
    throw std::runtime_error("child could not join its cgroup/netns (" +
                             (options.cgroup ? options.cgroup->path() : std::string("-")) + ", " +
                             (options.netns ? options.netns->path() : std::string("-")) + ")");
  }
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return -1;
}

// ---- UDP probes -----------------------------------------------------------------------

struct UdpProbe::Shared {
  std::atomic<int> stop{0};
  std::atomic<int> ready{0};  // 1 set up, -1 failed
  std::atomic<std::uint64_t> sent{0}, denied{0}, failed{0}, received{0};
};

UdpProbe::UdpProbe(Kind kind, ChildOptions where, const std::string& address, std::uint16_t port,
                   const std::string& source) {
  sockaddr_storage to{}, from{};
  socklen_t to_len = 0, from_len = 0;
  if (!to_sockaddr(address, port, to, to_len) ||
      (!source.empty() && !to_sockaddr(source, 0, from, from_len))) {
    throw std::runtime_error("UdpProbe: bad address '" + address + "' or '" + source + "'");
  }
  void* mem =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::runtime_error("UdpProbe: mmap failed");
  shared_ = new (mem) Shared();
  where.timeout_ms = 24 * 3600 * 1000;  // stopped by stop(), not by a timeout
  Shared* s = shared_;
  child_ = std::thread([=] {
    try {
      (void)run_child(where, [&]() -> int {
        int fd = ::socket(to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
          s->ready = -1;
          return 1;
        }
        if (kind == Kind::receive) {
          timeval tv{0, 20'000};
          ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
          if (::bind(fd, reinterpret_cast<const sockaddr*>(&to), to_len) != 0) {
            s->ready = -1;
            return 1;
          }
          s->ready = 1;
          char buf[64];
          while (s->stop == 0)
            if (::recv(fd, buf, sizeof buf, 0) >= 0) ++s->received;
          return 0;
        }
        if (from_len != 0 && ::bind(fd, reinterpret_cast<const sockaddr*>(&from), from_len) != 0) {
          s->ready = -1;
          return 1;
        }
        s->ready = 1;
        const char payload[] = "meshd-probe";
        while (s->stop == 0) {
          if (::sendto(fd, payload, sizeof payload, 0, reinterpret_cast<const sockaddr*>(&to),
                       to_len) >= 0)
            ++s->sent;
          else if (errno == EPERM)
            ++s->denied;
          else
            ++s->failed;
          ::usleep(1000);
        }
        return 0;
      });
    } catch (const std::exception&) {
      // could not join its cgroup/netns: reported through `ready` below
    }
    if (s->ready == 0) s->ready = -1;
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (shared_->ready == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (shared_->ready != 1) {
    stop();
    throw std::runtime_error("UdpProbe: the child could not set up its socket on " + address);
  }
}

UdpProbe::~UdpProbe() {
  stop();
  if (shared_ != nullptr) {
    shared_->~Shared();
    ::munmap(shared_, sizeof(Shared));
  }
}

UdpProbeCounts UdpProbe::counts() const {
  return {shared_->sent, shared_->denied, shared_->failed, shared_->received};
}

UdpProbeCounts UdpProbe::stop() {
  shared_->stop = 1;
  if (child_.joinable()) child_.join();
  return counts();
}

TcpListener::TcpListener(const NetNs* ns, const std::string& address, std::uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!to_sockaddr(address, port, ss, len)) {
    throw std::runtime_error("TcpListener: bad address '" + address + "'");
  }
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::close(ready[0]);
    char status = 1;
    int fd = -1;
    int one = 1;
    if (place_child(nullptr, ns) == 0 && (fd = ::socket(ss.ss_family, SOCK_STREAM, 0)) >= 0 &&
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 && ::listen(fd, 64) == 0) {
      status = 0;
    }
    ssize_t w = ::write(ready[1], &status, 1);
    (void)w;
    ::close(ready[1]);
    if (status != 0) ::_exit(1);
    while (true) {
      int c = ::accept(fd, nullptr, nullptr);
      if (c >= 0) ::close(c);
    }
  }
  ::close(ready[1]);
  char status = 1;
  ssize_t r = ::read(ready[0], &status, 1);
  ::close(ready[0]);
  if (r != 1 || status != 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    throw std::runtime_error("TcpListener: cannot listen on [" + address +
                             "]:" + std::to_string(port));
  }
}

TcpListener::~TcpListener() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

int tcp_connect(const std::string& address, std::uint16_t port, int timeout_ms) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!to_sockaddr(address, port, ss, len)) return EINVAL;
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int err = 0;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, timeout_ms);
      if (n == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t el = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
      }
    }
  }
  ::close(fd);
  return err;
}

int udp_sendto(const std::string& address, std::uint16_t port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (!to_sockaddr(address, port, ss, len)) return EINVAL;
  int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const char payload[] = "meshd";
  int err = 0;
  if (::sendto(fd, payload, sizeof payload, 0, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    err = errno;
  }
  ::close(fd);
  return err;
}

bool wait_until(const std::function<bool()>& predicate, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() > deadline) return predicate();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace meshd::test
