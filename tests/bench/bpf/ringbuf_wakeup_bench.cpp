// Connect-event delivery through the ring buffer with a reader that blocks (poll(-1)), no
// periodic polling: how long an event waits before the reader has it, and what the reader
// costs while nothing happens. Prints JSON. Needs root.
//
// A throwaway cgroup holds this process; its UDP connect()s to 127.0.0.1:9 fire the
// connect4 hook. Cases:
//   first_after_quiet  one connect after >= 30 ms of silence: the hook wakes the reader;
//   second_within_10ms a connect 2 ms after one that woke the reader: the hook sends no
//                      wakeup, the reader's recheck (20 ms after its last drain) finds it;
//   idle               2 s without events: CPU time and loop turns of the blocking reader,
//                      and of a reader that polls every 20 ms (the daemon's old loop).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_maps.hpp"
#include "sensor/bpf_ringbuf.hpp"
#include "tests/bench/bpf/bench_common.hpp"
#include "tests/support/netns/netns.hpp"

using namespace meshd;

namespace {

std::int64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t thread_cpu_ns(pthread_t t) {
  clockid_t id;
  if (::pthread_getcpuclockid(t, &id) != 0) return -1;
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void udp_connect() {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(9);
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  (void)::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
  ::close(fd);
}

// A reader thread; `blocking`: poll(-1) (woken by the kernel or its own recheck), else the
// old loop: poll(0) every 20 ms.
class Reader {
 public:
  Reader(sensor::RingbufEventSource& src, bool blocking) : src_(src), blocking_(blocking) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Reader() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    udp_connect();  // an event ends a blocking poll
    thread_.join();
  }
  std::uint64_t received() const { return received_.load(); }
  std::int64_t last_receive_ns() const { return last_ns_.load(); }
  std::uint64_t turns() const { return turns_.load(); }
  std::int64_t cpu_ns() { return thread_cpu_ns(thread_.native_handle()); }

 private:
  void loop() {
    std::vector<sensor::ConnectEvent> batch;
    while (!stop_) {
      batch.clear();
      const std::size_t n = src_.poll(batch, 4096, blocking_ ? -1 : 0);
      ++turns_;
      if (n > 0) {
        last_ns_ = mono_ns();
        received_ += n;
      }
      if (!blocking_) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  sensor::RingbufEventSource& src_;
  bool blocking_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> received_{0}, turns_{0};
  std::atomic<std::int64_t> last_ns_{0};
  std::thread thread_;
};

// Latency from connect() to the reader holding the event, ms; -1 after 2 s.
double deliver(Reader& r) {
  const std::uint64_t before = r.received();
  const std::int64_t t0 = mono_ns();
  udp_connect();
  while (r.received() == before) {
    if (mono_ns() - t0 > 2'000'000'000) return -1;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return static_cast<double>(r.last_receive_ns() - t0) / 1e6;
}

nlohmann::json stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return nullptr;
  return {{"median_ms", v[v.size() / 2]},
          {"p90_ms", v[v.size() * 9 / 10]},
          {"max_ms", v.back()},
          {"samples", v.size()}};
}

}  // namespace

int main(int argc, char** argv) {
  int samples = 20;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--samples") samples = std::stoi(argv[i + 1]);
  bench::quiet_logs();
  try {
    test::BpfPinDir pins("meshd-wakeup-bench");
    test::TestCgroup cg("meshd-wakeup-bench");
    cg.add_pid(::getpid());
    nlohmann::json out{{"benchmark", "ringbuf_wakeup"},
                       {"wakeup_interval_ms", MESHD_EVENTS_WAKEUP_INTERVAL_NS / 1e6},
                       {"recheck_ms", MESHD_EVENTS_RECHECK_NS / 1e6}};
    {
      sensor::BpfLoaderConfig config;
      config.pin_path = pins.path() + "/maps";
      config.cgroup_path = cg.path();
      auto loader = sensor::BpfLoader::load(config);
      if (!loader) throw std::runtime_error(loader.error().message);
      auto source = sensor::RingbufEventSource::create(*loader);
      if (!source) throw std::runtime_error(source.error().message);

      std::vector<double> quiet, second;
      std::uint64_t lost = 0;
      {
        Reader blocking(*source, true);
        for (int i = 0; i < samples; ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(30 + i % 20));
          quiet.push_back(deliver(blocking));
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          second.push_back(deliver(blocking));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // rechecks settle
        const std::uint64_t turns0 = blocking.turns();
        const std::int64_t cpu0 = blocking.cpu_ns();
        std::this_thread::sleep_for(std::chrono::seconds(2));
        out["idle_blocking_reader"] = {{"cpu_ms_per_s", (blocking.cpu_ns() - cpu0) / 2e6},
                                       {"wakeups_per_s", (blocking.turns() - turns0) / 2.0}};
        blocking.stop();
      }
      {
        Reader polling(*source, false);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        const std::uint64_t turns0 = polling.turns();
        const std::int64_t cpu0 = polling.cpu_ns();
        std::this_thread::sleep_for(std::chrono::seconds(2));
        out["idle_20ms_polling_reader"] = {{"cpu_ms_per_s", (polling.cpu_ns() - cpu0) / 2e6},
                                           {"wakeups_per_s", (polling.turns() - turns0) / 2.0}};
        polling.stop();
      }
      lost = source->lost_events();
      out["first_after_quiet"] = stats(quiet);
      out["second_within_10ms"] = stats(second);
      out["events_lost"] = lost;
    }
    std::ofstream(test::cgroup2_mount() + "/cgroup.procs") << ::getpid();
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ringbuf_wakeup_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
