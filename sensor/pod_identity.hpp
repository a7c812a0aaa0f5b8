// Pod identity: cgroup id (from BPF events) → cgroup path → container id / pod UID, plus
// pod name and namespace when kubelet metadata is available.
//
// kubelet names cgroups differently per cgroup driver; both are understood:
//   cgroupfs: /kubepods/burstable/pod<uid>/<64-hex container id>
//             (also crio-<id>, cri-containerd-<id>, docker-<id> leaf names)
//   systemd:  /kubepods.slice/kubepods-burstable.slice/
//               kubepods-burstable-pod<uid with '_' for '-'>.slice/cri-containerd-<id>.scope
//             (also docker-<id>.scope, crio-<id>.scope, libpod-<id>.scope)
// Guaranteed pods have no QoS level (kubepods-pod<uid>.slice, /kubepods/pod<uid>).
// Containers outside Kubernetes (/system.slice/docker-<id>.scope, /docker/<id>) get a
// container id and no pod UID.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "meshd/common/result.hpp"
#include "meshd/common/time.hpp"
#include "sensor/events.hpp"

namespace meshd::sensor {

// Pure: fills cgroup_path, container_id and pod_uid (UID with dashes, lower case) from a
// cgroup path relative to the cgroup v2 mount. Unknown layouts yield empty ids.
WorkloadIdentity parse_kubelet_cgroup(std::string_view cgroup_path);

// Pure: the cgroup v2 mount point from the text of /proc/mounts (the first "cgroup2" entry).
Result<std::string> find_cgroup2_mount(std::string_view proc_mounts);

struct CgroupResolverStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;   // ids not in the cache when asked
  std::uint64_t rescans = 0;  // full walks of the hierarchy
  std::uint64_t unknown = 0;  // ids still not found after a rescan (cgroup already gone)
  std::uint64_t cached = 0;   // entries in the cache
};

// cgroup id → path. On cgroup v2 the id the kernel reports (bpf_get_current_cgroup_id) is
// the inode number of the cgroup's directory, so a walk of the mount maps ids to paths.
// Results are cached; a miss triggers a re-walk, at most once per `min_rescan_ms` so that
// events from short-lived cgroups that are already gone cannot make every lookup a walk.
// Not thread-safe.
class CgroupPathResolver {
 public:
  explicit CgroupPathResolver(std::string mount_point, DurationMs min_rescan_ms = kSecond);
  // Uses /proc/mounts to find the mount.
  static Result<CgroupPathResolver> from_proc_mounts();

  // Path relative to the mount, "/" for the root cgroup; nullopt when unknown.
  std::optional<std::string> path_of(std::uint64_t cgroup_id, TimeMs now);
  const std::string& mount_point() const { return mount_; }
  const CgroupResolverStats& stats() const { return stats_; }

 private:
  void rescan();

  std::string mount_;
  DurationMs min_rescan_ms_;
  std::unordered_map<std::uint64_t, std::string> cache_;
  TimeMs last_rescan_ = 0;
  bool scanned_ = false;
  CgroupResolverStats stats_;
};

struct PodMeta {
  std::string name;
  std::string ns;
};

// Where pod names come from. Implementations: PodListFile (a JSON pod list on disk, e.g.
// written by a sidecar from the kubelet's /pods endpoint). A kubelet HTTPS client is not
// part of this tree: it needs node credentials, and the file keeps meshd free of them.
class PodMetadataSource {
 public:
  virtual ~PodMetadataSource() = default;
  virtual std::optional<PodMeta> lookup(std::string_view pod_uid) = 0;
};

// Pure: parses a Kubernetes PodList ({"items":[{"metadata":{"uid","name","namespace"}}]},
// the format of kubelet's /pods and `kubectl get pods -o json`) into uid → meta.
// Items without a uid are skipped; malformed JSON is an error naming `source`.
Result<std::unordered_map<std::string, PodMeta>> parse_pod_list(std::string_view json_text,
                                                                std::string_view source);

class PodListFile : public PodMetadataSource {
 public:
  explicit PodListFile(std::string path);
  // Re-reads the file when its mtime/size changed. On error the previous list stays.
  Result<bool> maybe_reload();
  std::optional<PodMeta> lookup(std::string_view pod_uid) override;
  std::uint64_t load_errors() const { return load_errors_; }

 private:
  std::string path_;
  std::unordered_map<std::string, PodMeta> pods_;
  std::int64_t mtime_ns_ = -1;
  std::int64_t size_ = -1;
  std::uint64_t load_errors_ = 0;
};

// The composition the daemon uses: id → path → parsed ids → optional pod name/namespace.
class PodIdentityResolver {
 public:
  // `metadata` may be null (no kubelet metadata). Neither pointer is owned.
  PodIdentityResolver(CgroupPathResolver* cgroups, PodMetadataSource* metadata);
  WorkloadIdentity resolve(std::uint64_t cgroup_id, TimeMs now);

 private:
  CgroupPathResolver* cgroups_;
  PodMetadataSource* metadata_;
};

}  // namespace meshd::sensor
