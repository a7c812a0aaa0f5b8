#include "sensor/bpf_maps.hpp"

#include "meshd/common/errno_text.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace meshd::sensor {

std::string pin_file(const std::string& pin_path, const char* map_name) {
  return pin_path + "/" + map_name;
}

Result<Fd> open_pinned_map(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    return fail("pin_open_failed",
                "cannot open pinned BPF object " + path + ": " + errno_text(errno));
  }
  return Fd(fd);
}

meshd_v4_key to_v4_key(const Prefix& p) {
  meshd_v4_key k{};
  k.prefixlen = p.len;
  std::memcpy(k.addr, p.addr.data(), sizeof k.addr);
  return k;
}

meshd_v6_key to_v6_key(const Prefix& p) {
  meshd_v6_key k{};
  k.prefixlen = p.len;
  std::memcpy(k.addr, p.addr.data(), sizeof k.addr);
  return k;
}

Prefix from_key(const meshd_v4_key& k) {
  Prefix p;
  p.family = Family::v4;
  p.len = static_cast<std::uint8_t>(k.prefixlen);
  std::memcpy(p.addr.data(), k.addr, sizeof k.addr);
  return p;
}

Prefix from_key(const meshd_v6_key& k) {
  Prefix p;
  p.family = Family::v6;
  p.len = static_cast<std::uint8_t>(k.prefixlen);
  std::memcpy(p.addr.data(), k.addr, sizeof k.addr);
  return p;
}

Result<HookCounters> read_hook_counters(int counters_fd) {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return fail("cpu_count", "cannot determine the number of possible CPUs");
  HookCounters total{};
  // Per-CPU values come back as one element per possible CPU, each rounded up to 8 bytes
  // (meshd_hook_counters already is a multiple of 8).
  std::vector<meshd_hook_counters> per_cpu(static_cast<std::size_t>(ncpu));
  for (std::uint32_t hook = 0; hook < MESHD_HOOK_COUNT; ++hook) {
    if (bpf_map_lookup_elem(counters_fd, &hook, per_cpu.data()) != 0) {
      return fail("counters_read_failed", "reading per-CPU counters for hook " +
                                              std::to_string(hook) + ": " + errno_text(errno));
    }
    for (const auto& c : per_cpu) {
      total[hook].seen += c.seen;
      total[hook].blocked += c.blocked;
      total[hook].expired += c.expired;
      total[hook].unparsed += c.unparsed;
      total[hook].events_lost += c.events_lost;
    }
  }
  return total;
}

}  // namespace meshd::sensor
