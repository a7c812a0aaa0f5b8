// connect() loop throughput with meshd's cgroup hooks attached vs detached, from a process
// inside a throwaway cgroup. Two loops: UDP (socket + connect + close: no packet leaves,
// so the hook's share is as large as it gets) and TCP to a loopback listener (the usual
// case). The block trie holds --rules IPv4 entries (none matching 127.0.0.1) and a thread
// drains the ring buffer while hooks are attached, as the daemon does. Rounds alternate
// detached/attached; medians are reported. Prints JSON. Needs root. Goal: ratio >= 0.95.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_ringbuf.hpp"
#include "tests/bench/bpf/bench_common.hpp"
#include "tests/support/netns/netns.hpp"

using namespace meshd;

namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct Rate {
  double per_wall_s = 0;  // connects per second of wall time
  double per_cpu_s = 0;   // connects per CPU second of the whole process (all threads):
                          // robust when other processes compete for the 2 cores
};

// Connect rates over `seconds`; negative on the first failing connect.
Rate loop(int type, std::uint16_t port, double seconds) {
  const sockaddr_in dst = loopback(port);
  std::size_t n = 0;
  const double cpu0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    for (int i = 0; i < 256; ++i, ++n) {
      int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
      int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
      ::close(fd);
      if (rc != 0) return {-1, -1};
    }
    const double s = bench::seconds_since(t0);
    if (s >= seconds) {
      return {static_cast<double>(n) / s, static_cast<double>(n) / (cpu_seconds() - cpu0)};
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  int rounds = 5;
  std::size_t rule_count = 100'000;
  for (int i = 1; i + 1 < argc; ++i) {
    std::string a = argv[i];
    if (a == "--seconds") seconds = std::stod(argv[i + 1]);
    if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    if (a == "--rules") rule_count = std::stoul(argv[i + 1]);
  }
  bench::quiet_logs();
  try {
    test::BpfPinDir pins("meshd-connect-bench");
    test::TestCgroup cg("meshd-connect-bench");
    cg.add_pid(::getpid());

    // TCP listener on an ephemeral loopback port, accepting in a thread.
    int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in any = loopback(0);
    socklen_t len = sizeof any;
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0 ||
        ::listen(lfd, 4096) != 0 || ::getsockname(lfd, reinterpret_cast<sockaddr*>(&any), &len)) {
      std::fprintf(stderr, "bpf_connect_bench: cannot listen on loopback\n");
      return 1;
    }
    const std::uint16_t tcp_port = ntohs(any.sin_port);
    std::atomic<bool> stop{false};
    std::thread acceptor([&] {
      while (!stop) {
        int c = ::accept(lfd, nullptr, nullptr);
        if (c >= 0) ::close(c);
      }
    });

    sensor::BpfLoaderConfig config;
    config.pin_path = pins.path() + "/maps";
    config.cgroup_path = cg.path();
    {
      // Fill the pinned trie once; every attached round reuses it.
      sensor::BpfLoaderConfig fill = config;
      fill.cgroup_path.clear();
      auto loader = sensor::BpfLoader::load(fill);
      if (!loader) throw std::runtime_error(loader.error().message);
      auto e = sensor::BpfEnforcer::from_loader(*loader);
      bench::RuleMix mix;
      auto rules = bench::make_rules(rule_count, wall_now_ms(), mix, true);
      if (!e || !e->apply(rules, wall_now_ms())) throw std::runtime_error("filling rules");
    }

    std::vector<Rate> udp_off, udp_on, tcp_off, tcp_on;
    std::uint64_t events = 0, lost = 0;
    for (int r = 0; r < rounds; ++r) {
      udp_off.push_back(loop(SOCK_DGRAM, 9, seconds));
      tcp_off.push_back(loop(SOCK_STREAM, tcp_port, seconds));
      auto loader = sensor::BpfLoader::load(config);
      if (!loader) throw std::runtime_error(loader.error().message);
      auto source = sensor::RingbufEventSource::create(*loader);
      if (!source) throw std::runtime_error(source.error().message);
      std::atomic<bool> drain{true};
      std::thread consumer([&] {
        std::vector<sensor::ConnectEvent> batch;
        while (drain) {
          batch.clear();
          events += source->poll(batch, 4096, 50);
        }
      });
      udp_on.push_back(loop(SOCK_DGRAM, 9, seconds));
      tcp_on.push_back(loop(SOCK_STREAM, tcp_port, seconds));
      drain = false;
      consumer.join();
      lost = source->lost_events();
    }
    stop = true;
    ::shutdown(lfd, SHUT_RDWR);
    ::close(lfd);
    acceptor.join();
    // Leave the cgroup so its guard can remove it.
    std::ofstream(test::cgroup2_mount() + "/cgroup.procs") << ::getpid();

    auto med = [](const std::vector<Rate>& v, bool cpu) {
      std::vector<double> x;
      for (const Rate& r : v) x.push_back(cpu ? r.per_cpu_s : r.per_wall_s);
      return bench::median(x);
    };
    const double uo = med(udp_off, false), un = med(udp_on, false);
    const double to = med(tcp_off, false), tn = med(tcp_on, false);
    const double uoc = med(udp_off, true), unc = med(udp_on, true);
    const double toc = med(tcp_off, true), tnc = med(tcp_on, true);
    nlohmann::json out{{"benchmark", "bpf_connect_throughput"},
                       {"rules_in_trie", rule_count},
                       {"rounds", rounds},
                       {"seconds_per_loop", seconds},
                       {"udp_connects_per_s_detached", uo},
                       {"udp_connects_per_s_attached", un},
                       {"udp_ratio", un / uo},
                       {"tcp_connects_per_s_detached", to},
                       {"tcp_connects_per_s_attached", tn},
                       {"tcp_ratio", tn / to},
                       {"udp_connects_per_cpu_s_detached", uoc},
                       {"udp_connects_per_cpu_s_attached", unc},
                       {"udp_ratio_cpu", unc / uoc},
                       {"tcp_connects_per_cpu_s_detached", toc},
                       {"tcp_connects_per_cpu_s_attached", tnc},
                       {"tcp_ratio_cpu", tnc / toc},
                       {"events_read", events},
                       {"events_lost", lost},
                       {"goal_ratio", 0.95}};
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bpf_connect_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
