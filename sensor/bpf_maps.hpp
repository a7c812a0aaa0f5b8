// User-space side of the kernel/user contract in bpf/meshd_shared.h: layout checks, key and
// value conversions, per-CPU counter reads, clocks, and a move-only fd owner. Used by the
// loader, the bpf enforcer, the ring-buffer source, tests and benchmarks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "bpf/meshd_shared.h"
#include "meshd/common/clock.hpp"
#include "meshd/common/direction.hpp"
#include "meshd/common/fd.hpp"
#include "meshd/common/prefix.hpp"
#include "meshd/common/result.hpp"

// The C++ compiler must see exactly the layout the BPF compiler produced. Any change to
// meshd_shared.h that moves a field breaks the build here instead of corrupting maps.
static_assert(sizeof(meshd_v4_key) == 8);
static_assert(offsetof(meshd_v4_key, addr) == 4);
static_assert(sizeof(meshd_v6_key) == 20);
static_assert(offsetof(meshd_v6_key, addr) == 4);
static_assert(sizeof(meshd_block_value) == 24);
static_assert(offsetof(meshd_block_value, expiry_boot_ns) == 0);
static_assert(offsetof(meshd_block_value, rule_id) == 8);
static_assert(offsetof(meshd_block_value, direction) == 16);
static_assert(offsetof(meshd_block_value, prefixlen) == 20);
static_assert(sizeof(meshd_hook_counters) == 40);
static_assert(offsetof(meshd_hook_counters, events_lost) == 32);
static_assert(sizeof(meshd_connect_event) == 80);
static_assert(offsetof(meshd_connect_event, cgroup_id) == 8);
static_assert(offsetof(meshd_connect_event, rule_id) == 16);
static_assert(offsetof(meshd_connect_event, pid) == 24);
static_assert(offsetof(meshd_connect_event, tgid) == 28);
static_assert(offsetof(meshd_connect_event, uid) == 32);
static_assert(offsetof(meshd_connect_event, port) == 36);
static_assert(offsetof(meshd_connect_event, family) == 38);
static_assert(offsetof(meshd_connect_event, protocol) == 39);
static_assert(offsetof(meshd_connect_event, verdict) == 40);
static_assert(offsetof(meshd_connect_event, hook) == 41);
static_assert(offsetof(meshd_connect_event, addr) == 48);
static_assert(offsetof(meshd_connect_event, comm) == 64);
static_assert(MESHD_HOOK_COUNT == 6);
// Direction flags travel unchanged from the claims into the map values.
static_assert(MESHD_DIR_EGRESS == static_cast<unsigned>(meshd::Direction::egress));
static_assert(MESHD_DIR_INGRESS == static_cast<unsigned>(meshd::Direction::ingress));
static_assert(MESHD_DIR_MASK == static_cast<unsigned>(meshd::Direction::both));

namespace meshd::sensor {

// "<pin_path>/<map name>": where BpfLoader pins each persistent map.
std::string pin_file(const std::string& pin_path, const char* map_name);

// Opens a pinned BPF object (bpf_obj_get), with an error naming the path.
Result<Fd> open_pinned_map(const std::string& path);

// Prefix <-> LPM key. The prefix's family must match the key type.
meshd_v4_key to_v4_key(const Prefix& p);
meshd_v6_key to_v6_key(const Prefix& p);
Prefix from_key(const meshd_v4_key& k);
Prefix from_key(const meshd_v6_key& k);

// Per-hook counters summed over all possible CPUs (indexed by enum meshd_hook).
using HookCounters = std::array<meshd_hook_counters, MESHD_HOOK_COUNT>;
Result<HookCounters> read_hook_counters(int counters_fd);

}  // namespace meshd::sensor
