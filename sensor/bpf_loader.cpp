#include "sensor/bpf_loader.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>

#include <spdlog/spdlog.h>

#include "bpf/meshd.skel.h"
#include "meshd/common/errno_text.hpp"
#include "sensor/bpf_maps.hpp"

namespace meshd::sensor {
namespace {

// BPF_TCX_EGRESS and BPF_LINK_TYPE_TCX from linux/bpf.h >= 6.6; Debian 12's UAPI headers
// (6.1) lack them.
constexpr int kBpfTcxEgress = 47;
constexpr std::uint32_t kLinkTypeTcx = 11;

// The maps pinned under pin_path. The ring buffer is not: events are only useful to the
// process reading them (a program left attached after its daemon exited writes into its
// own ring buffer until it is replaced).
constexpr const char* kPinnedMaps[] = {
    MESHD_MAP_BLOCK_V4,  MESHD_MAP_BLOCK_V6,       MESHD_MAP_EXACT_V4, MESHD_MAP_EXACT_V6,
    MESHD_MAP_V4_FILTER, MESHD_MAP_V4_TRIE_FILTER, MESHD_MAP_COUNTERS};

// libbpf's own diagnostics (verifier log, pin reuse mismatches) go to spdlog.
int libbpf_to_spdlog(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  std::string_view text(buf, n < 0 ? 0 : std::min<std::size_t>(n, sizeof buf - 1));
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (level == LIBBPF_WARN)
    spdlog::warn("libbpf: {}", text);
  else
    spdlog::debug("libbpf: {}", text);
  return n;
}

// mkdir -p below a bpffs mount; pin files can only live on bpffs.
Result<void> ensure_pin_dir(const std::string& path) {
  for (std::size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    std::string dir = path.substr(0, pos);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail("pin_path", "cannot create pin directory " + dir + ": " + errno_text(errno));
    }
  }
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0 || fs.f_type != BPF_FS_MAGIC) {
    return fail("pin_path",
                "pin path " + path + " is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)");
  }
  return {};
}

std::string links_dir(const std::string& pin_path) {
  return pin_path + "/links";
}
std::string clsact_dir(const std::string& pin_path) {
  return pin_path + "/clsact";
}

// bpffs refuses names with a '.' (EPERM), which interface names may have (eth0.100): pin
// and marker names carry interface names with '%' and '.' escaped as %25 and %2e.
std::string pin_name(std::string_view ifname) {
  std::string out;
  for (char c : ifname) {
    if (c == '%')
      out += "%25";
    else if (c == '.')
      out += "%2e";
    else
      out += c;
  }
  return out;
}
std::string ifname_of(std::string_view name) {
  std::string out;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (name.substr(i, 3) == "%25") {
      out += '%';
      i += 2;
    } else if (name.substr(i, 3) == "%2e") {
      out += '.';
      i += 2;
    } else {
      out += name[i];
    }
  }
  return out;
}

// Names in a directory (without . and ..), sorted; none when it does not exist.
Result<std::vector<std::string>> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return out;
    return fail("pin_path", "cannot read " + dir + ": " + errno_text(errno));
  }
  while (const dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") out.emplace_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// True when fd is a BPF link (bpf_obj_get also opens pinned maps and programs).
bool is_link(int fd) {
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("link_type:", 0) == 0) return true;
  return false;
}

// What a link is attached to. target 0: the link is defunct (its cgroup or interface is
// gone); it enforces nothing and only its pin is left to remove.
struct LinkKey {
  std::uint32_t type = 0;         // BPF_LINK_TYPE_*
  std::uint32_t attach_type = 0;  // BPF_CGROUP_INET4_CONNECT, ..., BPF_XDP, tcx egress
  std::uint64_t target = 0;       // cgroup id or ifindex
  bool operator==(const LinkKey&) const = default;
};

// struct bpf_link_info up to the members read here, with tcx's (Debian 12's header has no
// tcx member; it shares the union's first bytes with xdp's ifindex).
struct LinkInfoHead {
  std::uint32_t type;
  std::uint32_t id;
  std::uint32_t prog_id;
  std::uint32_t pad;
  union {
    struct {
      std::uint64_t cgroup_id;
      std::uint32_t attach_type;
    } cgroup;
    struct {
      std::uint32_t ifindex;
      std::uint32_t attach_type;  // tcx only
    } netdev;
  } u;
};
static_assert(offsetof(LinkInfoHead, u.cgroup.cgroup_id) ==
              offsetof(bpf_link_info, cgroup.cgroup_id));
static_assert(offsetof(LinkInfoHead, u.cgroup.attach_type) ==
              offsetof(bpf_link_info, cgroup.attach_type));
static_assert(offsetof(LinkInfoHead, u.netdev.ifindex) == offsetof(bpf_link_info, xdp.ifindex));

Result<LinkKey> link_key(int fd) {
  LinkInfoHead info{};
  auto len = static_cast<std::uint32_t>(sizeof info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
    return fail("bpf_link_info", "reading link info: " + errno_text(errno));
  }
  switch (info.type) {
    case BPF_LINK_TYPE_CGROUP:
      return LinkKey{info.type, info.u.cgroup.attach_type, info.u.cgroup.cgroup_id};
    case BPF_LINK_TYPE_XDP:
      return LinkKey{info.type, BPF_XDP, info.u.netdev.ifindex};
    case kLinkTypeTcx:
      return LinkKey{info.type, info.u.netdev.attach_type, info.u.netdev.ifindex};
    default:
      return LinkKey{info.type, 0, 0};
  }
}

std::string describe_key(const LinkKey& k) {
  switch (k.type) {
    case BPF_LINK_TYPE_CGROUP:
      return "cgroup link (attach type " + std::to_string(k.attach_type) + ", cgroup id " +
             std::to_string(k.target) + ")";
    case BPF_LINK_TYPE_XDP:
      return "xdp link (ifindex " + std::to_string(k.target) + ")";
    case kLinkTypeTcx:
      return "tcx link (ifindex " + std::to_string(k.target) + ")";
    default:
      return "link of type " + std::to_string(k.type);
  }
}

std::string xdp_mode_of(int ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (bpf_xdp_query(ifindex, 0, &q) != 0) return "xdp";
  switch (q.attach_mode) {
    case XDP_ATTACHED_DRV:
      return "xdp native";
    case XDP_ATTACHED_SKB:
      return "xdp generic";
    case XDP_ATTACHED_HW:
      return "xdp offload";
    default:
      return "xdp";
  }
}

// meshd's persistent clsact filter on one interface.
bpf_tc_opts tc_filter_opts() {
  bpf_tc_opts o{};
  o.sz = sizeof o;
  o.handle = kTcHandle;
  o.priority = kTcPriority;
  return o;
}

bpf_tc_hook egress_hook(int ifindex) {
  bpf_tc_hook h{};
  h.sz = sizeof h;
  h.ifindex = ifindex;
  h.attach_point = BPF_TC_EGRESS;
  return h;
}

// A link found pinned under <pin_path>/links when load() started.
struct PinnedLink {
  std::string path;  // cleared when another link was pinned over it
  Fd fd;
  LinkKey key;
  bool keep = false;  // taken over (or already detached): not stale
};

// A link this loader holds.
struct OwnedLink {
  Fd fd;
  std::string pin;       // its pin file ("" when not pinned)
  bool created = false;  // attached anew by this load() where nothing was (undone on failure)
};

struct ClsactFilter {
  bpf_tc_hook hook{};
  std::uint32_t handle = 0;
  std::uint32_t priority = 0;
  bool created_hook = false;  // this loader created the clsact qdisc
  bool created = false;       // no meshd filter was there before
  std::string marker;         // <pin_path>/clsact/<ifname> ("" when not persistent)
};

}  // namespace

struct BpfLoader::Impl {
  meshd_bpf* skel = nullptr;
  std::string pin_path;
  bool persistent = false;
  bool committed = false;          // load() finished
  std::vector<PinnedLink> pinned;  // found at load(), until commit()
  std::vector<OwnedLink> links;
  std::vector<ClsactFilter> clsact;
  std::vector<BpfAttachment> attachments;
  BpfFeatures features;

  ~Impl() {
    // Persistent and loaded: everything stays attached (pins, clsact filters); only our
    // descriptors close. Otherwise what this loader attached anew is detached.
    const bool undo = !persistent || !committed;
    for (auto& l : links) {
      if (!undo || (persistent && !l.created)) continue;
      if (!l.pin.empty()) ::unlink(l.pin.c_str());
      l.fd.reset();  // the last reference: the kernel detaches the link
    }
    links.clear();
    for (auto& a : clsact) {
      if (!undo || (persistent && !a.created)) continue;
      bpf_tc_opts detach{};
      detach.sz = sizeof detach;
      detach.handle = a.handle;
      detach.priority = a.priority;
      if (int err = bpf_tc_detach(&a.hook, &detach); err != 0) {
        spdlog::warn("bpf: detaching tc filter from ifindex {}: {}", a.hook.ifindex,
                     errno_text(err));
      }
      if (a.created_hook) {
        bpf_tc_hook all = a.hook;
        all.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        bpf_tc_hook_destroy(&all);
      }
      if (!a.marker.empty()) ::rmdir(a.marker.c_str());
    }
    if (skel != nullptr) meshd_bpf::destroy(skel);  // closes map fds; pins stay
  }

  std::string link_pin(const std::string& name) const {
    return persistent ? links_dir(pin_path) + "/" + name : std::string();
  }

  // Every link pinned under links/ by an earlier loader.
  Result<void> read_pinned() {
    auto names = list_dir(links_dir(pin_path));
    if (!names) return std::unexpected(names.error());
    for (const std::string& name : *names) {
      PinnedLink p;
      p.path = links_dir(pin_path) + "/" + name;
      p.fd = Fd(bpf_obj_get(p.path.c_str()));
      if (!p.fd.valid()) {
        return fail("bpf_pinned_link",
                    "cannot open pinned link " + p.path + ": " + errno_text(errno));
      }
      if (!is_link(p.fd.get())) {
        spdlog::warn("bpf: {} is not a BPF link; left alone", p.path);
        continue;
      }
      auto key = link_key(p.fd.get());
      if (!key) {
        return fail("bpf_pinned_link", "pinned link " + p.path + ": " + key.error().message);
      }
      p.key = *key;
      pinned.push_back(std::move(p));
    }
    return {};
  }

  // Forgets pins replaced by another pin at `path`.
  void forget_pin(const std::string& path) {
    for (auto& p : pinned)
      if (p.path == path) p.path.clear();
  }

  // Pins `fd` at `path` (in links/), replacing whatever is pinned there: pinned under a
  // temporary name first ("tmp_" + name: no pin name starts so) and renamed over, so the
  // path never goes missing.
  Result<void> pin_at(int fd, const std::string& path) {
    const std::string tmp = links_dir(pin_path) + "/tmp_" + path.substr(path.rfind('/') + 1);
    ::unlink(tmp.c_str());
    if (bpf_obj_pin(fd, tmp.c_str()) != 0) {
      return fail("bpf_pin", "pinning link at " + tmp + ": " + errno_text(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return fail("bpf_pin",
                  "renaming pinned link " + tmp + " to " + path + ": " + errno_text(err));
    }
    forget_pin(path);
    return {};
  }

  // The live pinned link for `key`, preferring the one at `pin`.
  PinnedLink* find_pinned(const LinkKey& key, const std::string& pin) {
    PinnedLink* found = nullptr;
    for (auto& p : pinned) {
      if (p.keep || p.key.target == 0 || !(p.key == key)) continue;
      if (p.path == pin) return &p;
      if (found == nullptr) found = &p;
    }
    return found;
  }

  // Attaches `prog` for `key`, pinned at `pin` when persistent: a pinned link for the same
  // hook and target is switched to `prog` in place; otherwise create() makes a new link.
  // `exclusive`: the hook takes one program only (XDP). Returns whether it took over.
  template <class Create>
  Result<bool> attach_link(const LinkKey& key, int prog, const std::string& pin, bool exclusive,
                           Create&& create) {
    PinnedLink* old = persistent ? find_pinned(key, pin) : nullptr;
    if (old != nullptr) {
      if (bpf_link_update(old->fd.get(), prog, nullptr) == 0) {
        old->keep = true;
        if (old->path != pin) {
          if (::rename(old->path.c_str(), pin.c_str()) != 0) {
            return fail("bpf_pin", "renaming pinned link " + old->path + " to " + pin + ": " +
                                       errno_text(errno));
          }
          forget_pin(pin);
          old->path = pin;
        }
        links.push_back({std::move(old->fd), pin, false});
        return true;
      }
      const int err = errno;
      if (exclusive) {
        // One program per hook: the old one must go first, a moment without enforcement.
        spdlog::warn(
            "bpf: cannot switch pinned link {} to the new program ({}); detaching it "
            "and attaching anew",
            old->path, errno_text(err));
        bpf_link_detach(old->fd.get());
        ::unlink(old->path.c_str());
        old->path.clear();
        old->keep = true;
      } else {
        // Multi-attach: the new link comes first, the old one is detached by commit().
        spdlog::warn(
            "bpf: cannot switch pinned link {} to the new program ({}); attaching a "
            "second link, then detaching the old one",
            old->path, errno_text(err));
      }
    }
    auto fd = create();
    if (!fd) return std::unexpected(fd.error());
    if (persistent) {
      if (auto r = pin_at(fd->get(), pin); !r) return std::unexpected(r.error());
    }
    links.push_back({std::move(*fd), pin, old == nullptr});
    return false;
  }

  Result<void> attach_cgroup(const std::string& path) {
    Fd cg(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    struct stat st {};
    if (!cg.valid() || ::fstat(cg.get(), &st) != 0) {
      return fail("cgroup_open", "cannot open cgroup " + path + ": " + errno_text(errno));
    }
    // A cgroup v2 directory's inode number is the cgroup id the kernel reports for links.
    const auto cgroup_id = static_cast<std::uint64_t>(st.st_ino);
    for (bpf_program* prog : {skel->progs.meshd_connect4, skel->progs.meshd_connect6,
                              skel->progs.meshd_sendmsg4, skel->progs.meshd_sendmsg6}) {
      const bpf_attach_type type = bpf_program__expected_attach_type(prog);
      const std::string name = bpf_program__name(prog);
      const int prog_fd = bpf_program__fd(prog);
      // "meshd_connect4" -> links/cgroup_connect4
      const std::string pin = link_pin("cgroup_" + name.substr(name.find('_') + 1));
      auto taken = attach_link(
          LinkKey{BPF_LINK_TYPE_CGROUP, type, cgroup_id}, prog_fd, pin, false, [&]() -> Result<Fd> {
            int fd = bpf_link_create(prog_fd, cg.get(), type, nullptr);
            if (fd < 0) {
              return fail("cgroup_attach",
                          "attaching " + name + " to cgroup " + path + ": " + errno_text(errno));
            }
            return Fd(fd);
          });
      if (!taken) return std::unexpected(taken.error());
      attachments.push_back({name, path, "cgroup link", *taken});
    }
    return {};
  }

  Result<void> attach_xdp(const std::string& ifname, int ifindex, bool force_generic) {
    const int prog = bpf_program__fd(skel->progs.meshd_xdp_ingress);
    std::string mode;
    auto taken = attach_link(
        LinkKey{BPF_LINK_TYPE_XDP, BPF_XDP, static_cast<std::uint64_t>(ifindex)}, prog,
        link_pin("xdp_" + pin_name(ifname)), true, [&]() -> Result<Fd> {
          int native_err = 0;
          if (!force_generic) {
            bpf_link_create_opts opts{};
            opts.sz = sizeof opts;
            opts.flags = XDP_FLAGS_DRV_MODE;
            int fd = bpf_link_create(prog, ifindex, BPF_XDP, &opts);
            if (fd >= 0) {
              mode = "xdp native";
              return Fd(fd);
            }
            native_err = errno;
          }
          bpf_link_create_opts opts{};
          opts.sz = sizeof opts;
          opts.flags = XDP_FLAGS_SKB_MODE;
          int fd = bpf_link_create(prog, ifindex, BPF_XDP, &opts);
          if (fd < 0) {
            return fail("xdp_attach", "attaching XDP to " + ifname + " failed in native mode (" +
                                          (force_generic ? "not tried" : errno_text(native_err)) +
                                          ") and generic mode (" + errno_text(errno) + ")");
          }
          mode = "xdp generic";
          return Fd(fd);
        });
    if (!taken) return std::unexpected(taken.error());
    if (*taken) mode = xdp_mode_of(ifindex);
    if (mode == "xdp native") features.xdp_native = true;
    attachments.push_back({"meshd_xdp_ingress", ifname, mode, *taken});
    return {};
  }

  Result<void> attach_tc(const std::string& ifname, int ifindex, bool force_clsact) {
    const int prog = bpf_program__fd(skel->progs.meshd_tc_egress);
    std::string tcx_err;
    if (!force_clsact) {
      // libbpf 1.1 has no tcx API, but bpf_link_create passes the attach type through.
      auto taken =
          attach_link(LinkKey{kLinkTypeTcx, static_cast<std::uint32_t>(kBpfTcxEgress),
                              static_cast<std::uint64_t>(ifindex)},
                      prog, link_pin("tcx_" + pin_name(ifname)), false, [&]() -> Result<Fd> {
                        int fd = bpf_link_create(
                            prog, ifindex, static_cast<bpf_attach_type>(kBpfTcxEgress), nullptr);
                        if (fd < 0) return fail("tcx_attach", errno_text(errno));
                        return Fd(fd);
                      });
      if (taken) {
        attachments.push_back({"meshd_tc_egress", ifname, "tcx", *taken});
        features.tcx = true;
        return {};
      }
      tcx_err = taken.error().message;
    }
    ClsactFilter a;
    a.hook = egress_hook(ifindex);
    int err = bpf_tc_hook_create(&a.hook);
    if (err != 0 && err != -EEXIST) {
      return fail("tc_attach", "creating clsact qdisc on " + ifname + ": " + errno_text(err) +
                                   (force_clsact ? "" : "; tcx failed too: " + tcx_err));
    }
    a.created_hook = (err == 0);
    bpf_tc_opts opts{};
    opts.sz = sizeof opts;
    if (persistent) {
      // Fixed handle and priority: a restart replaces its predecessor's filter in place.
      // Asked only where a filter was recorded (a miss makes libbpf log a kernel warning).
      opts = tc_filter_opts();
      opts.flags = BPF_TC_F_REPLACE;
      a.marker = clsact_dir(pin_path) + "/" + pin_name(ifname);
      struct stat st {};
      bpf_tc_opts query = tc_filter_opts();
      a.created = ::stat(a.marker.c_str(), &st) != 0 || bpf_tc_query(&a.hook, &query) != 0;
    } else {
      a.created = true;
    }
    opts.prog_fd = prog;
    err = bpf_tc_attach(&a.hook, &opts);
    if (err != 0) {
      if (a.created_hook) bpf_tc_hook_destroy(&a.hook);
      return fail("tc_attach", "attaching tc filter on " + ifname + " egress: " + errno_text(err));
    }
    a.handle = opts.handle;
    a.priority = opts.priority;
    if (persistent) {
      for (const std::string& dir : {clsact_dir(pin_path), a.marker}) {
        if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
          const int e = errno;
          clsact.push_back(a);  // the destructor detaches it again if it is new
          return fail("bpf_pin", "recording the clsact filter in " + dir + ": " + errno_text(e));
        }
      }
    }
    const bool taken_over = !a.created;
    clsact.push_back(a);
    attachments.push_back({"meshd_tc_egress", ifname, "clsact", taken_over});
    return {};
  }

  // After every attachment is in place: detaches what a previous run left that this
  // configuration does not want, and keeps the rest from now on.
  void commit() {
    std::vector<std::string> removed;
    for (auto& p : pinned) {
      if (p.keep) continue;
      if (p.key.target != 0 && p.fd.valid() && bpf_link_detach(p.fd.get()) != 0) {
        spdlog::warn("bpf: detaching stale {}: {}", describe_key(p.key), errno_text(errno));
      }
      if (!p.path.empty() && ::unlink(p.path.c_str()) != 0 && errno != ENOENT) {
        spdlog::warn("bpf: unpinning stale link {}: {}", p.path, errno_text(errno));
      }
      removed.push_back((p.key.target == 0 ? "defunct " : "") + describe_key(p.key));
    }
    pinned.clear();
    if (persistent) {
      auto names = list_dir(clsact_dir(pin_path));
      for (const std::string& name : names ? *names : std::vector<std::string>{}) {
        const std::string marker = clsact_dir(pin_path) + "/" + name;
        const std::string ifname = ifname_of(name);
        if (std::any_of(clsact.begin(), clsact.end(),
                        [&](const ClsactFilter& c) { return c.marker == marker; }))
          continue;
        if (int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str())); ifindex != 0) {
          bpf_tc_hook hook = egress_hook(ifindex);
          bpf_tc_opts opts = tc_filter_opts();
          if (bpf_tc_detach(&hook, &opts) == 0) removed.push_back("clsact filter on " + ifname);
        }
        ::rmdir(marker.c_str());
      }
    }
    committed = true;
    if (!removed.empty()) {
      std::string text;
      for (const auto& r : removed) text += (text.empty() ? "" : "; ") + r;
      spdlog::info(
          "bpf: detached {} attachment(s) of a previous run that this configuration "
          "does not want: {}",
          removed.size(), text);
    }
  }
};

BpfLoader::BpfLoader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpfLoader::BpfLoader(BpfLoader&&) noexcept = default;
BpfLoader& BpfLoader::operator=(BpfLoader&&) noexcept = default;
BpfLoader::~BpfLoader() = default;

Result<BpfLoader> BpfLoader::load(const BpfLoaderConfig& config) {
  static std::once_flag print_once;
  std::call_once(print_once, [] { libbpf_set_print(libbpf_to_spdlog); });

  auto impl = std::make_unique<Impl>();
  impl->pin_path = config.pin_path;
  impl->persistent = !config.pin_path.empty();
  impl->skel = meshd_bpf::open();
  if (impl->skel == nullptr) {
    return fail("bpf_open", "opening the meshd BPF object: " + errno_text(errno));
  }

  if (impl->persistent) {
    if (auto r = ensure_pin_dir(links_dir(config.pin_path)); !r) return std::unexpected(r.error());
    for (const char* name : kPinnedMaps) {
      bpf_map* map = bpf_object__find_map_by_name(impl->skel->obj, name);
      if (map == nullptr) return fail("bpf_pin", std::string("the BPF object has no map ") + name);
      std::string file = pin_file(config.pin_path, name);
      if (int err = bpf_map__set_pin_path(map, file.c_str()); err != 0) {
        return fail("bpf_pin", "setting pin path " + file + ": " + errno_text(err));
      }
    }
  }

  if (int err = meshd_bpf::load(impl->skel); err != 0) {
    return fail("bpf_load",
                "loading the meshd BPF programs" +
                    (config.pin_path.empty()
                         ? std::string()
                         : " (pinned maps under " + config.pin_path +
                               " are reused; a layout mismatch after an upgrade needs them "
                               "removed: meshd --detach)") +
                    ": " + errno_text(err));
  }

  if (impl->persistent) {
    if (auto r = impl->read_pinned(); !r) return std::unexpected(r.error());
  }
  if (!config.cgroup_path.empty()) {
    if (auto r = impl->attach_cgroup(config.cgroup_path); !r) return std::unexpected(r.error());
  }
  for (const std::string& ifname : config.interfaces) {
    int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str()));
    if (ifindex == 0) {
      return fail("no_interface",
                  "interface '" + ifname + "' does not exist: " + errno_text(errno));
    }
    if (config.attach_xdp) {
      if (auto r = impl->attach_xdp(ifname, ifindex, config.force_xdp_generic); !r) {
        return std::unexpected(r.error());
      }
    }
    if (config.attach_tc) {
      if (auto r = impl->attach_tc(ifname, ifindex, config.force_tc_clsact); !r) {
        return std::unexpected(r.error());
      }
    }
  }
  impl->commit();

  BpfLoader loader(std::move(impl));
  spdlog::info("bpf: loaded (maps and links {}); attached: {}",
               config.pin_path.empty() ? std::string("not pinned: detached on exit")
                                       : "pinned under " + config.pin_path + ": kept on exit",
               loader.describe());
  return loader;
}

Result<BpfDetachReport> BpfLoader::detach_pinned(const std::string& pin_path) {
  BpfDetachReport report;
  if (pin_path.empty()) return fail("pin_path", "no pin path given: nothing is pinned");
  struct stat st {};
  if (::stat(pin_path.c_str(), &st) != 0) {
    if (errno == ENOENT) return report;
    return fail("pin_path", "cannot stat " + pin_path + ": " + errno_text(errno));
  }
  std::vector<std::string> failures;
  auto note = [&](std::string what) { failures.push_back(std::move(what)); };

  auto links = list_dir(links_dir(pin_path));
  if (!links) return std::unexpected(links.error());
  for (const std::string& name : *links) {
    const std::string path = links_dir(pin_path) + "/" + name;
    Fd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) {
      note("opening " + path + ": " + errno_text(errno));
      continue;
    }
    if (!is_link(fd.get())) {
      note(path + " is not a BPF link; left alone");
      continue;
    }
    // Detach first: someone else holding the link's fd must not keep it attached.
    auto key = link_key(fd.get());
    if (key && key->target != 0 && bpf_link_detach(fd.get()) != 0) {
      note("detaching " + path + ": " + errno_text(errno));
    }
    if (::unlink(path.c_str()) != 0) {
      note("unpinning " + path + ": " + errno_text(errno));
      continue;
    }
    ++report.links;
  }
  ::rmdir(links_dir(pin_path).c_str());

  auto markers = list_dir(clsact_dir(pin_path));
  if (!markers) return std::unexpected(markers.error());
  for (const std::string& name : *markers) {
    const std::string ifname = ifname_of(name);
    if (int ifindex = static_cast<int>(::if_nametoindex(ifname.c_str())); ifindex != 0) {
      bpf_tc_hook hook = egress_hook(ifindex);
      bpf_tc_opts opts = tc_filter_opts();
      const int err = bpf_tc_detach(&hook, &opts);
      if (err == 0)
        ++report.tc_filters;
      else if (err != -ENOENT && err != -EINVAL)  // gone already (filter or qdisc)
        note("deleting the clsact filter on " + ifname + ": " + errno_text(err));
    }
    ::rmdir((clsact_dir(pin_path) + "/" + name).c_str());
  }
  ::rmdir(clsact_dir(pin_path).c_str());

  for (const char* name : kPinnedMaps) {
    const std::string file = pin_file(pin_path, name);
    if (::unlink(file.c_str()) == 0)
      ++report.maps;
    else if (errno != ENOENT)
      note("unpinning " + file + ": " + errno_text(errno));
  }
  report.pin_dir_removed = ::rmdir(pin_path.c_str()) == 0;
  if (!report.pin_dir_removed && errno != ENOTEMPTY && errno != EEXIST)
    note("removing " + pin_path + ": " + errno_text(errno));

  if (!failures.empty()) {
    std::string text;
    for (const auto& f : failures) text += (text.empty() ? "" : "; ") + f;
    return fail("bpf_detach", "detaching under " + pin_path + " (" + report.describe() +
                                  " removed so far): " + text);
  }
  return report;
}

std::string BpfDetachReport::describe() const {
  auto n = [](std::size_t count, const char* what) {
    return std::to_string(count) + " " + what + (count == 1 ? "" : "s");
  };
  return n(links, "link") + ", " + n(tc_filters, "tc filter") + ", " + n(maps, "map") +
         (pin_dir_removed ? "; pin directory removed" : "");
}

int BpfLoader::block_v4_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_block_v4);
}
int BpfLoader::block_v6_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_block_v6);
}
int BpfLoader::exact_v4_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_exact_v4);
}
int BpfLoader::exact_v6_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_exact_v6);
}
int BpfLoader::v4_trie_filter_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_v4_tfilt);
}
int BpfLoader::v4_filter_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_v4_filter);
}
int BpfLoader::counters_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_counters);
}
int BpfLoader::events_fd() const {
  return bpf_map__fd(impl_->skel->maps.meshd_events);
}
int BpfLoader::xdp_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.meshd_xdp_ingress);
}
int BpfLoader::tc_prog_fd() const {
  return bpf_program__fd(impl_->skel->progs.meshd_tc_egress);
}
const std::string& BpfLoader::pin_path() const {
  return impl_->pin_path;
}
bool BpfLoader::persistent() const {
  return impl_->persistent;
}
const std::vector<BpfAttachment>& BpfLoader::attachments() const {
  return impl_->attachments;
}
BpfFeatures BpfLoader::features() const {
  return impl_->features;
}

std::string BpfLoader::describe() const {
  if (impl_->attachments.empty()) return "nothing";
  std::string out;
  for (const auto& a : impl_->attachments) {
    if (!out.empty()) out += "; ";
    out +=
        a.program + " -> " + a.target + " (" + a.mode + (a.taken_over ? ", taken over" : "") + ")";
  }
  return out;
}

}  // namespace meshd::sensor
