#include "sensor/pod_identity.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace meshd::sensor {
namespace {

bool is_hex(std::string_view s) {
  return !s.empty() && std::ranges::all_of(s, [](unsigned char c) {
    return std::isdigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

// Pod UIDs are UUIDs (36 chars with dashes); static pods use a 32-hex config hash.
std::optional<std::string> as_pod_uid(std::string_view s) {
  std::string uid;
  int hex = 0;
  for (char c : s) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (l == '_' || l == '-') {
      uid += '-';
    } else if (std::isxdigit(static_cast<unsigned char>(l))) {
      uid += l;
      ++hex;
    } else {
      return std::nullopt;
    }
  }
  if (hex != 32 || (uid.size() != 32 && uid.size() != 36)) return std::nullopt;
  return uid;
}

std::optional<std::string> pod_uid_of(std::string_view seg) {
  if (seg.starts_with("pod")) return as_pod_uid(seg.substr(3));  // cgroupfs
  if (seg.starts_with("kubepods") && seg.ends_with(".slice")) {  // systemd
    auto pos = seg.rfind("-pod");
    if (pos == std::string_view::npos) return std::nullopt;
    return as_pod_uid(seg.substr(pos + 4, seg.size() - (pos + 4) - 6));
  }
  return std::nullopt;
}

std::optional<std::string> container_id_of(std::string_view seg) {
  if (seg.ends_with(".scope")) seg.remove_suffix(6);
  if (seg.starts_with("crio-conmon-")) return std::nullopt;  // CRI-O's monitor, not the container
  for (std::string_view prefix :
       {"cri-containerd-", "containerd-", "docker-", "crio-", "libpod-"}) {
    if (seg.starts_with(prefix)) {
      auto id = seg.substr(prefix.size());
      if (id.size() >= 12 && is_hex(id)) return std::string(id);
      return std::nullopt;
    }
  }
  if (seg.size() == 64 && is_hex(seg)) return std::string(seg);
  return std::nullopt;
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

WorkloadIdentity parse_kubelet_cgroup(std::string_view path) {
  WorkloadIdentity id;
  id.cgroup_path = std::string(path);
  while (!path.empty()) {
    auto slash = path.find('/');
    auto seg = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (seg.empty()) continue;
    if (id.pod_uid.empty())
      if (auto uid = pod_uid_of(seg)) {
        id.pod_uid = *uid;
        continue;
      }
    // The first container-looking segment is the outermost container; anything below it
    // (init.scope, nested runtimes) belongs to that container.
    if (id.container_id.empty())
      if (auto cid = container_id_of(seg)) id.container_id = *cid;
  }
  return id;
}

Result<std::string> find_cgroup2_mount(std::string_view mounts) {
  while (!mounts.empty()) {
    auto nl = mounts.find('\n');
    std::string_view line = mounts.substr(0, nl);
    mounts = nl == std::string_view::npos ? std::string_view{} : mounts.substr(nl + 1);
    std::istringstream in{std::string(line)};
    std::string dev, dir, type;
    if (in >> dev >> dir >> type && type == "cgroup2") {
      // /proc/mounts escapes spaces etc. as octal; cgroup mounts never contain them.
      return dir;
    }
  }
  return fail("no_cgroup2", "no cgroup2 filesystem in /proc/mounts");
}

CgroupPathResolver::CgroupPathResolver(std::string mount_point, DurationMs min_rescan_ms)
    : mount_(std::move(mount_point)), min_rescan_ms_(min_rescan_ms) {
  while (mount_.size() > 1 && mount_.back() == '/') mount_.pop_back();
}

Result<CgroupPathResolver> CgroupPathResolver::from_proc_mounts() {
  std::ifstream in("/proc/mounts");
  if (!in) return fail("no_cgroup2", "cannot read /proc/mounts");
  std::ostringstream buf;
  buf << in.rdbuf();
  auto mount = find_cgroup2_mount(buf.str());
  if (!mount) return std::unexpected(mount.error());
  return CgroupPathResolver(*mount);
}

void CgroupPathResolver::rescan() {
  ++stats_.rescans;
  cache_.clear();
  namespace fs = std::filesystem;
  std::error_code ec;
  struct stat st {};
  if (::stat(mount_.c_str(), &st) == 0) cache_[st.st_ino] = "/";
  // Cgroups come and go during the walk: every step tolerates vanished directories.
  fs::recursive_directory_iterator it(mount_, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory(ec) || it->is_symlink(ec)) {
      ec.clear();
      continue;
    }
    const std::string full = it->path().string();
    if (::stat(full.c_str(), &st) != 0) continue;
    cache_[st.st_ino] = full.substr(mount_.size());
  }
  stats_.cached = cache_.size();
}

std::optional<std::string> CgroupPathResolver::path_of(std::uint64_t cgroup_id, TimeMs now) {
  if (auto it = cache_.find(cgroup_id); it != cache_.end()) {
    ++stats_.hits;
    return it->second;
  }
  ++stats_.misses;
  if (!scanned_ || now - last_rescan_ >= min_rescan_ms_ || now < last_rescan_) {
    scanned_ = true;
    last_rescan_ = now;
    rescan();
    if (auto it = cache_.find(cgroup_id); it != cache_.end()) return it->second;
  }
  ++stats_.unknown;
  return std::nullopt;
}

Result<std::unordered_map<std::string, PodMeta>> parse_pod_list(std::string_view text,
                                                                std::string_view source) {
  using json = nlohmann::json;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return fail("bad_json", std::string(source) + ": not valid JSON");
  auto items = j.find("items");
  if (!j.is_object() || items == j.end() || !items->is_array())
    return fail("bad_pod_list",
                std::string(source) + ": expected a PodList object with an 'items' array");
  std::unordered_map<std::string, PodMeta> out;
  for (const auto& item : *items) {
    if (!item.is_object()) continue;
    auto md = item.find("metadata");
    if (md == item.end() || !md->is_object()) continue;
    auto str = [&](const char* key) {
      auto it = md->find(key);
      return it != md->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    std::string uid = str("uid");
    if (uid.empty()) continue;
    out[uid] = PodMeta{str("name"), str("namespace")};
  }
  return out;
}

PodListFile::PodListFile(std::string path) : path_(std::move(path)) {}

Result<bool> PodListFile::maybe_reload() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    ++load_errors_;
    return fail("pod_list_unreadable", "pod list '" + path_ + "' cannot be read");
  }
  if (mtime_ns(st) == mtime_ns_ && st.st_size == size_) return false;
  std::ifstream in(path_);
  std::ostringstream buf;
  buf << in.rdbuf();
  auto pods = parse_pod_list(buf.str(), path_);
  if (!pods) {
    ++load_errors_;
    return std::unexpected(pods.error());
  }
  pods_ = std::move(*pods);
  mtime_ns_ = mtime_ns(st);
  size_ = st.st_size;
  return true;
}

std::optional<PodMeta> PodListFile::lookup(std::string_view pod_uid) {
  auto it = pods_.find(std::string(pod_uid));
  if (it == pods_.end()) return std::nullopt;
  return it->second;
}

PodIdentityResolver::PodIdentityResolver(CgroupPathResolver* cgroups, PodMetadataSource* metadata)
    : cgroups_(cgroups), metadata_(metadata) {}

WorkloadIdentity PodIdentityResolver::resolve(std::uint64_t cgroup_id, TimeMs now) {
  auto path = cgroups_ ? cgroups_->path_of(cgroup_id, now) : std::nullopt;
  if (!path) return {};
  WorkloadIdentity id = parse_kubelet_cgroup(*path);
  if (metadata_ && !id.pod_uid.empty())
    if (auto meta = metadata_->lookup(id.pod_uid)) {
      id.pod_name = meta->name;
      id.pod_namespace = meta->ns;
    }
  return id;
}

}  // namespace meshd::sensor
