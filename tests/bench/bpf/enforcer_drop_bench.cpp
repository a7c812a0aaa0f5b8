// Drop rate of meshd's XDP ingress program vs the nftables enforcer: same veth pair, same
// traffic, same prefixes, one run. Prints JSON. Needs root.
//
// Set-up: the process first moves itself into a network namespace of its own
// (unshare(CLONE_NEWNET)), then creates a veth pair in it: frames are sent into `mdtx` and
// arrive on `mdrx` (198.18.0.1/30). Everything the benchmark creates (namespace, veths,
// XDP links, the nftables table, unpinned BPF maps) belongs to that namespace or to the
// process, so the kernel removes all of it when the process exits, however it exits
// (error, SIGINT, SIGKILL). Nothing outside the namespace is touched, and no packet
// leaves it.
//
// Both enforcers get the same N rules (the install benchmarks' mix: random IPv4 /32 and
// /24, some IPv6; direction both). Traffic: 60-byte UDP frames from K sources inside the
// blocked IPv4 prefixes to 198.18.0.1, built by hand and sent with AF_PACKET
// (PACKET_QDISC_BYPASS, sendmmsg) on mdtx. Modes, alternating round by round:
//   xdp      meshd_xdp_ingress attached to mdrx (native mode if veth accepts it, else
//            generic), as BpfLoader attaches it; drops counted by the program's counters;
//   nft      no XDP program; the NftEnforcer's input chain drops (rule counters);
//   xdp_all  a 2-instruction XDP program returning XDP_DROP: the floor of any XDP drop on
//            this veth (skb already built by the sender, copy into XDP headroom), so the
//            gap to `xdp` is what meshd's lookup costs;
//   tc       no XDP program; meshd's TC program (meshd_tc_egress) at the TC *ingress* hook of
//            mdrx (clsact, direct action), dropping on the frame's destination: the BPF
//            maps also hold 198.18.0.1/32 for egress. meshd attaches this program to egress
//            only; here it measures what the same lookup costs one hook later than XDP
//            (the skb is built and the frame has passed GRO, before IP input and nf_tables).
//            Every frame matches the /32 exact map (the XDP rounds' sources are a mix of
//            /32 and /24 entries).
// The nftables table stays installed throughout: while an XDP program drops, nft never
// sees the frames (checked: its counters must not move during XDP rounds).
//
// CPU accounting: the sender thread is pinned to one CPU; on veth the receive side (NAPI
// poll with XDP, or the backlog + IP input + nf_tables without) runs in softirq on that CPU,
// inline at the end of the send syscall (charged to the sender thread) or in ksoftirqd
// when it runs long. CPU per round = sender thread CPU time + CPU time of every ksoftirqd
// (from /proc/<pid>/schedstat). So cpu_ns_per_drop is the whole cost of a dropped frame:
// building and sending it, the veth hop, and the drop itself; the sender's share is the
// same in every mode. Rates per wall second depend on the machine's other load; the CPU
// figures much less.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/nft_enforcer.hpp"
#include "tests/bench/bpf/bench_common.hpp"
#include "tests/support/netns/netns.hpp"

using namespace meshd;

namespace {

constexpr const char* kRx = "mdrx";
constexpr const char* kTx = "mdtx";
constexpr std::uint32_t kRxAddr = 0xc6120001;  // 198.18.0.1 (benchmarking range, RFC 2544)

struct Options {
  std::size_t prefixes = 100'000;
  double seconds = 0.5;  // per round and mode
  int rounds = 11;
  std::size_t sources = 256;
  unsigned batch = 64;  // frames per sendmmsg
};

std::runtime_error sys_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

std::int64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// pids of the ksoftirqd/N kernel threads (softirq work deferred from the sender's CPU).
std::vector<int> ksoftirqd_pids() {
  std::vector<int> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream comm(entry.path() / "comm");
    std::string c;
    if (std::getline(comm, c) && c.rfind("ksoftirqd/", 0) == 0) pids.push_back(std::stoi(name));
  }
  return pids;
}

// Sum of the tasks' on-CPU time in ns (first field of /proc/<pid>/schedstat).
std::int64_t tasks_cpu_ns(const std::vector<int>& pids) {
  std::int64_t total = 0;
  for (int pid : pids) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/schedstat");
    std::int64_t ns = 0;
    if (f >> ns) total += ns;
  }
  return total;
}

std::array<std::uint8_t, 6> mac_of(const char* ifname) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  std::strncpy(req.ifr_name, ifname, IFNAMSIZ - 1);
  const int rc = ::ioctl(fd, SIOCGIFHWADDR, &req);
  ::close(fd);
  if (rc != 0) throw sys_error(std::string("SIOCGIFHWADDR ") + ifname);
  std::array<std::uint8_t, 6> mac{};
  std::memcpy(mac.data(), req.ifr_hwaddr.sa_data, 6);
  return mac;
}

std::uint16_t ip_checksum(const std::uint8_t* hdr, std::size_t len) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += (std::uint32_t{hdr[i]} << 8) | hdr[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// Ethernet + IPv4 + UDP (port 9) with 18 bytes of payload: a 60-byte frame.
std::vector<std::uint8_t> udp_frame(const std::array<std::uint8_t, 6>& dst_mac,
                                    const std::array<std::uint8_t, 6>& src_mac,
                                    std::uint32_t src_ip) {
  std::vector<std::uint8_t> f(60, 0);
  std::memcpy(&f[0], dst_mac.data(), 6);
  std::memcpy(&f[6], src_mac.data(), 6);
  f[12] = 0x08;  // IPv4
  std::uint8_t* ip = &f[14];
  ip[0] = 0x45;
  ip[3] = 46;  // total length: 20 + 8 + 18
  ip[8] = 64;  // TTL
  ip[9] = IPPROTO_UDP;
  for (int i = 0; i < 4; ++i) {
    ip[12 + i] = static_cast<std::uint8_t>(src_ip >> (24 - 8 * i));
    ip[16 + i] = static_cast<std::uint8_t>(kRxAddr >> (24 - 8 * i));
  }
  const std::uint16_t csum = ip_checksum(ip, 20);
  ip[10] = static_cast<std::uint8_t>(csum >> 8);
  ip[11] = static_cast<std::uint8_t>(csum);
  std::uint8_t* udp = ip + 20;
  udp[0] = 0x30;  // source port 12345
  udp[1] = 0x39;
  udp[3] = 9;   // destination port 9 (discard)
  udp[5] = 26;  // length 8 + 18; checksum 0 (none)
  return f;
}

// Sources inside blocked IPv4 prefixes that the IP stack would not discard as martians
// before the input hook (0/8, 127/8, 224/3 and the veth's own /30 are left out).
std::vector<std::uint32_t> blocked_sources(const std::vector<sensor::BlockRule>& rules,
                                           std::size_t count) {
  std::vector<std::uint32_t> out;
  std::mt19937 rng(7);
  // With few rules the same prefix serves several sources (other host bits, if any).
  for (std::size_t i = 0; out.size() < count && i < count * 64; ++i) {
    const Prefix& p = rules[(i * 7919) % rules.size()].prefix;
    if (p.family != Family::v4) continue;
    std::uint32_t a = (std::uint32_t{p.addr[0]} << 24) | (std::uint32_t{p.addr[1]} << 16) |
                      (std::uint32_t{p.addr[2]} << 8) | p.addr[3];
    if (p.len < 32) a |= rng() & ((1u << (32 - p.len)) - 1);
    const std::uint32_t first = a >> 24;
    if (first == 0 || first == 127 || first >= 224 || (a & 0xfffffffcu) == (kRxAddr & ~3u))
      continue;
    out.push_back(a);
  }
  if (out.size() < count) throw std::runtime_error("not enough usable blocked sources");
  return out;
}

// Sends frames round-robin with sendmmsg on an AF_PACKET socket bound to the veth.
class Blaster {
 public:
  Blaster(const char* ifname, std::vector<std::vector<std::uint8_t>> frames, unsigned batch)
      : frames_(std::move(frames)), batch_(batch) {
    fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: send only
    if (fd_ < 0) throw sys_error("socket(AF_PACKET)");
    int one = 1;
    if (::setsockopt(fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) != 0)
      throw sys_error("PACKET_QDISC_BYPASS");
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_IP);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex(ifname));
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
      throw sys_error("bind(AF_PACKET)");
    // One iovec and header per frame, reused in order: batch b sends frames
    // [b*batch, b*batch + batch) modulo the frame count.
    iov_.resize(frames_.size());
    for (std::size_t i = 0; i < frames_.size(); ++i)
      iov_[i] = {frames_[i].data(), frames_[i].size()};
    msgs_.resize(batch_);
  }
  ~Blaster() {
    if (fd_ >= 0) ::close(fd_);
  }

  struct Result {
    std::uint64_t sent = 0;
    std::uint64_t send_errors = 0;  // frames the send path refused (ENOBUFS, ...)
    double wall_s = 0;
    std::int64_t thread_cpu_ns = 0;
  };

  Result run(double seconds) {
    Result r;
    const std::int64_t cpu0 = thread_cpu_ns();
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      for (int k = 0; k < 16; ++k) {
        for (unsigned i = 0; i < batch_; ++i) {
          msgs_[i] = {};
          msgs_[i].msg_hdr.msg_iov = &iov_[(next_ + i) % iov_.size()];
          msgs_[i].msg_hdr.msg_iovlen = 1;
        }
        const int n = ::sendmmsg(fd_, msgs_.data(), batch_, 0);
        if (n < 0) {
          if (errno != ENOBUFS && errno != EAGAIN) throw sys_error("sendmmsg");
          ++r.send_errors;
          next_ = (next_ + 1) % iov_.size();
          continue;
        }
        r.sent += static_cast<std::uint64_t>(n);
        next_ =
            (next_ + static_cast<std::size_t>(n) + (n < static_cast<int>(batch_))) % iov_.size();
        r.send_errors += n < static_cast<int>(batch_);
      }
      r.wall_s = bench::seconds_since(t0);
      if (r.wall_s >= seconds) break;
    }
    r.thread_cpu_ns = thread_cpu_ns() - cpu0;
    return r;
  }

 private:
  int fd_ = -1;
  std::vector<std::vector<std::uint8_t>> frames_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
  unsigned batch_;
  std::size_t next_ = 0;
};

// An XDP link on `ifindex`: driver (native) mode when the driver takes it, else generic,
// exactly as BpfLoader attaches meshd_xdp_ingress. Closing the fd detaches.
Fd attach_xdp(int prog_fd, int ifindex, std::string& mode) {
  for (std::uint32_t flags : {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE}) {
    bpf_link_create_opts opts{};
    opts.sz = sizeof opts;
    opts.flags = flags;
    const int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
    if (fd >= 0) {
      mode = flags == XDP_FLAGS_DRV_MODE ? "native" : "generic";
      return Fd(fd);
    }
  }
  throw sys_error("attaching XDP");
}

// meshd's TC program on a clsact qdisc's ingress of `ifindex` (direct action); the
// destructor removes the filter and the qdisc.
class TcIngress {
 public:
  TcIngress(int prog_fd, int ifindex) {
    hook_.sz = sizeof hook_;
    hook_.ifindex = ifindex;
    hook_.attach_point = BPF_TC_INGRESS;
    const int rc = bpf_tc_hook_create(&hook_);
    if (rc != 0 && rc != -EEXIST) {
      errno = -rc;
      throw sys_error("creating the clsact qdisc");
    }
    opts_.sz = sizeof opts_;
    opts_.prog_fd = prog_fd;
    opts_.handle = 1;
    opts_.priority = 1;
    if (const int a = bpf_tc_attach(&hook_, &opts_); a != 0) {
      bpf_tc_hook_destroy(&hook_);
      errno = -a;
      throw sys_error("attaching the TC program at ingress");
    }
  }
  ~TcIngress() {
    opts_.prog_fd = 0;
    opts_.prog_id = 0;
    opts_.flags = 0;
    bpf_tc_detach(&hook_, &opts_);
    hook_.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
    bpf_tc_hook_destroy(&hook_);
  }
  TcIngress(const TcIngress&) = delete;
  TcIngress& operator=(const TcIngress&) = delete;

 private:
  bpf_tc_hook hook_{};
  bpf_tc_opts opts_{};
};

// r0 = XDP_DROP; exit.
Fd load_drop_all() {
  bpf_insn insns[2]{};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[0].imm = XDP_DROP;
  insns[1].code = BPF_JMP | BPF_EXIT;
  const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "drop_all", "GPL", insns, 2, nullptr);
  if (fd < 0) throw sys_error("loading the drop-all XDP program");
  return Fd(fd);
}

struct RoundResult {
  std::uint64_t sent = 0, send_errors = 0, dropped = 0;
  double wall_s = 0;
  std::int64_t cpu_ns = 0;        // sender thread + ksoftirqd
  std::int64_t softirqd_ns = 0;   // the ksoftirqd share
  std::uint64_t other_drops = 0;  // drops the other enforcer counted meanwhile (must be 0)
};

nlohmann::json summarize(const std::vector<RoundResult>& rounds) {
  std::vector<double> per_s, per_cpu_s;
  std::uint64_t sent = 0, dropped = 0, errors = 0, other = 0;
  std::int64_t softirqd = 0, cpu = 0;
  for (const RoundResult& r : rounds) {
    per_s.push_back(static_cast<double>(r.dropped) / r.wall_s);
    per_cpu_s.push_back(static_cast<double>(r.dropped) / (static_cast<double>(r.cpu_ns) / 1e9));
    sent += r.sent;
    dropped += r.dropped;
    errors += r.send_errors;
    other += r.other_drops;
    softirqd += r.softirqd_ns;
    cpu += r.cpu_ns;
  }
  // Medians over rounds; cpu_ns_per_drop is the median CPU rate's inverse.
  const double cpu_rate = bench::median(per_cpu_s);
  return {
      {"drops_per_s", bench::median(per_s)},
      {"drops_per_cpu_s", cpu_rate},
      {"cpu_ns_per_drop", cpu_rate > 0 ? 1e9 / cpu_rate : 0},
      {"sent", sent},
      {"dropped", dropped},
      {"dropped_fraction", sent ? static_cast<double>(dropped) / static_cast<double>(sent) : 0},
      {"send_errors", errors},
      {"ksoftirqd_cpu_share", cpu ? static_cast<double>(softirqd) / static_cast<double>(cpu) : 0},
      {"drops_seen_by_the_other_enforcer", other}};
}

int run(const Options& opt) {
  // Everything below lives in this namespace and dies with the process.
  if (::unshare(CLONE_NEWNET) != 0) throw sys_error("unshare(CLONE_NEWNET) (run as root)");
  test::run_checked("ip link set lo up");
  test::run_checked(std::string("ip link add ") + kRx + " type veth peer name " + kTx);
  test::run_checked(std::string("ip addr add 198.18.0.1/30 dev ") + kRx);
  // Spoofed sources must reach the input hook: no reverse-path filtering in here.
  for (const char* conf : {"all", "default", kRx}) {
    std::ofstream(std::string("/proc/sys/net/ipv4/conf/") + conf + "/rp_filter") << 0;
  }
  test::run_checked(std::string("ip link set ") + kRx + " up && ip link set " + kTx + " up");
  const int rx_ifindex = static_cast<int>(::if_nametoindex(kRx));

  const TimeMs now = wall_now_ms();
  bench::RuleMix mix;
  const auto rules = bench::make_rules(opt.prefixes, now, mix);

  // XDP side: meshd's programs and maps (unpinned), nothing attached by the loader.
  sensor::BpfLoaderConfig config;
  config.pin_path = "";
  config.attach_xdp = false;
  config.attach_tc = false;
  auto loader = sensor::BpfLoader::load(config);
  if (!loader) throw std::runtime_error(loader.error().message);
  auto bpf = sensor::BpfEnforcer::from_loader(*loader);
  if (!bpf) throw std::runtime_error(bpf.error().message);
  auto t0 = std::chrono::steady_clock::now();
  // + the receiver's own address for egress, for the `tc` mode (see the header).
  auto bpf_rules = rules;
  bpf_rules.push_back({Prefix::v4(kRxAddr, 32), Direction::egress, rules.size() + 1, now + kHour});
  auto bpf_rep = bpf->apply(bpf_rules, now);
  const double bpf_install_s = bench::seconds_since(t0);
  if (!bpf_rep || bpf_rep->applied != bpf_rules.size())
    throw std::runtime_error("bpf apply failed");

  // nftables side: the enforcer's own table in this namespace.
  auto nft = sensor::NftEnforcer::create({}, now);
  if (!nft) throw std::runtime_error(nft.error().message);
  t0 = std::chrono::steady_clock::now();
  auto nft_rep = (*nft)->apply(rules, now);
  const double nft_install_s = bench::seconds_since(t0);
  if (!nft_rep || nft_rep->applied != rules.size()) throw std::runtime_error("nft apply failed");

  const auto dst_mac = mac_of(kRx);
  const auto src_mac = mac_of(kTx);
  std::vector<std::vector<std::uint8_t>> frames;
  for (std::uint32_t src : blocked_sources(rules, opt.sources))
    frames.push_back(udp_frame(dst_mac, src_mac, src));

  // Pin the sender (and so the veth's softirq work) to the CPU we are on.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  const int cpu = ::sched_getcpu();
  CPU_SET(cpu, &cpus);
  if (::sched_setaffinity(0, sizeof cpus, &cpus) != 0) throw sys_error("sched_setaffinity");
  const std::vector<int> softirqd = ksoftirqd_pids();

  Blaster blaster(kTx, std::move(frames), opt.batch);
  Fd drop_all = load_drop_all();
  auto xdp_drops = [&] {
    auto c = sensor::read_hook_counters(loader->counters_fd());
    if (!c) throw std::runtime_error(c.error().message);
    return (*c)[MESHD_HOOK_XDP_INGRESS].blocked;
  };
  auto tc_drops = [&] {
    auto c = sensor::read_hook_counters(loader->counters_fd());
    if (!c) throw std::runtime_error(c.error().message);
    return (*c)[MESHD_HOOK_TC_EGRESS].blocked;
  };
  auto nft_drops = [&] { return (*nft)->stats().packets_dropped; };

  std::string xdp_mode, drop_all_mode;
  std::map<std::string, std::vector<RoundResult>> results;
  blaster.run(0.2);  // warm-up (nft mode): caches, page pools, the backlog
  for (int round = 0; round < opt.rounds; ++round) {
    for (const std::string mode : {"xdp", "nft", "xdp_all", "tc"}) {
      Fd link;
      std::optional<TcIngress> tc;
      if (mode == "xdp") link = attach_xdp(loader->xdp_prog_fd(), rx_ifindex, xdp_mode);
      if (mode == "xdp_all") link = attach_xdp(drop_all.get(), rx_ifindex, drop_all_mode);
      if (mode == "tc") tc.emplace(loader->tc_prog_fd(), rx_ifindex);
      const std::uint64_t x0 = xdp_drops(), n0 = nft_drops(), t0c = tc_drops();
      const std::int64_t s0 = tasks_cpu_ns(softirqd);
      const Blaster::Result b = blaster.run(opt.seconds);
      const std::int64_t s1 = tasks_cpu_ns(softirqd);
      link = Fd();
      tc.reset();
      const std::uint64_t x = xdp_drops() - x0, n = nft_drops() - n0, t = tc_drops() - t0c;
      RoundResult r;
      r.sent = b.sent;
      r.send_errors = b.send_errors;
      r.wall_s = b.wall_s;
      r.softirqd_ns = s1 - s0;
      r.cpu_ns = b.thread_cpu_ns + r.softirqd_ns;
      if (mode == "xdp") {
        r.dropped = x;
        r.other_drops = n + t;
      } else if (mode == "nft") {
        r.dropped = n;
        r.other_drops = x + t;
      } else if (mode == "tc") {
        r.dropped = t;
        r.other_drops = x + n;
      } else {
        r.dropped = b.sent;  // the program drops every frame it is given
        r.other_drops = x + n + t;
      }
      results[mode].push_back(r);
    }
  }

  const nlohmann::json xdp = summarize(results["xdp"]);
  const nlohmann::json nftj = summarize(results["nft"]);
  const nlohmann::json all = summarize(results["xdp_all"]);
  const nlohmann::json tcj = summarize(results["tc"]);
  const double xdp_ns = xdp["cpu_ns_per_drop"], nft_ns = nftj["cpu_ns_per_drop"];
  const double all_ns = all["cpu_ns_per_drop"];
  nlohmann::json out{
      {"benchmark", "enforcer_drop_rate"},
      {"prefixes", opt.prefixes},
      {"mix", {{"v4_host", mix.v4_host}, {"v4_24", mix.v4_24}, {"v6", mix.v6}}},
      {"sources", opt.sources},
      {"frame_bytes", 60},
      {"rounds", opt.rounds},
      {"seconds_per_round", opt.seconds},
      {"sender_cpu", cpu},
      {"xdp_mode", xdp_mode},
      {"install_s", {{"bpf", bpf_install_s}, {"nft", nft_install_s}}},
      {"xdp", xdp},
      {"nft", nftj},
      {"xdp_drop_all_floor", all},
      {"tc_ingress", tcj},
      {"ratio_xdp_vs_nft_drops_per_s",
       xdp["drops_per_s"].get<double>() / nftj["drops_per_s"].get<double>()},
      {"ratio_xdp_vs_nft_drops_per_cpu_s",
       xdp["drops_per_cpu_s"].get<double>() / nftj["drops_per_cpu_s"].get<double>()},
      // The same comparison with the cost every mode shares (building, sending and
      // forwarding the frame, measured by the drop-all floor) taken out.
      {"meshd_lookup_ns_over_floor", xdp_ns - all_ns},
      {"nft_ns_over_floor", nft_ns - all_ns},
  };
  std::printf("%s\n", out.dump().c_str());
  if (auto r = (*nft)->destroy(); !r) {
    std::fprintf(stderr, "enforcer_drop_bench: removing the nft table: %s\n",
                 r.error().message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--prefixes")
      opt.prefixes = std::stoul(argv[i + 1]);
    else if (a == "--seconds")
      opt.seconds = std::stod(argv[i + 1]);
    else if (a == "--rounds")
      opt.rounds = std::stoi(argv[i + 1]);
    else if (a == "--sources")
      opt.sources = std::stoul(argv[i + 1]);
    else if (a == "--batch")
      opt.batch = static_cast<unsigned>(std::stoul(argv[i + 1]));
    else {
      std::fprintf(stderr,
                   "usage: enforcer_drop_bench [--prefixes N] [--seconds S] [--rounds R] "
                   "[--sources K] [--batch B]\n");
      return 2;
    }
  }
  bench::quiet_logs();
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "enforcer_drop_bench: %s\n", e.what());
    return 1;
  }
}
