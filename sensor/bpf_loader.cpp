#include "sensor/bpf_loader.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/magic.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <spdlog/spdlog.h>

#include "bpf/meshd.skel.h"
#include "meshd/common/errno_text.hpp"
#include "sensor/bpf_maps.hpp"

namespace meshd::sensor {
namespace {

// BPF_TCX_EGRESS from linux/bpf.h >= 6.6; Debian 12's UAPI headers (6.1) lack it.
constexpr int kBpfTcxEgress = 47;

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

struct TcClsactAttachment {
  bpf_tc_hook hook{};
  bpf_tc_opts opts{};
  bool created_hook = false;
};

}  // namespace

struct BpfLoader::Impl {
  meshd_bpf* skel = nullptr;
  std::string pin_path;
  std::vector<bpf_link*> cgroup_links;
  std::vector<Fd> link_fds;  // XDP and tcx links (raw bpf_link_create)
  std::vector<TcClsactAttachment> clsact;
  std::vector<BpfAttachment> attachments;
  BpfFeatures features;

  ~Impl() {
    for (bpf_link* l : cgroup_links) bpf_link__destroy(l);
    link_fds.clear();
    for (auto& a : clsact) {
      bpf_tc_opts detach{};
      detach.sz = sizeof detach;
      detach.handle = a.opts.handle;
      detach.priority = a.opts.priority;
      if (int err = bpf_tc_detach(&a.hook, &detach); err != 0) {
        spdlog::warn("bpf: detaching tc filter from ifindex {}: {}", a.hook.ifindex,
                     errno_text(err));
      }
      if (a.created_hook) {
        bpf_tc_hook all = a.hook;
        all.attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS);
        bpf_tc_hook_destroy(&all);
      }
    }
    if (skel != nullptr) meshd_bpf::destroy(skel);  // closes map fds; pins stay
  }

  Result<void> attach_cgroup(const std::string& path) {
    Fd cg(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg.valid()) {
      return fail("cgroup_open", "cannot open cgroup " + path + ": " + errno_text(errno));
    }
    for (bpf_program* prog : {skel->progs.meshd_connect4, skel->progs.meshd_connect6,
                              skel->progs.meshd_sendmsg4, skel->progs.meshd_sendmsg6}) {
      bpf_link* link = bpf_program__attach_cgroup(prog, cg.get());
      if (link == nullptr) {
        return fail("cgroup_attach", std::string("attaching ") + bpf_program__name(prog) +
                                         " to cgroup " + path + ": " + errno_text(errno));
      }
      cgroup_links.push_back(link);
      attachments.push_back({bpf_program__name(prog), path, "cgroup link"});
    }
    return {};
  }

  Result<void> attach_xdp(const std::string& ifname, int ifindex, bool force_generic) {
    int prog = bpf_program__fd(skel->progs.meshd_xdp_ingress);
    int native_err = 0;
    if (!force_generic) {
      bpf_link_create_opts opts{};
      opts.sz = sizeof opts;
      opts.flags = XDP_FLAGS_DRV_MODE;
      int fd = bpf_link_create(prog, ifindex, BPF_XDP, &opts);
      if (fd >= 0) {
        link_fds.emplace_back(fd);
        attachments.push_back({"meshd_xdp_ingress", ifname, "xdp native"});
        features.xdp_native = true;
        return {};
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
    link_fds.emplace_back(fd);
    attachments.push_back({"meshd_xdp_ingress", ifname, "xdp generic"});
    return {};
  }

  Result<void> attach_tc(const std::string& ifname, int ifindex, bool force_clsact) {
    int prog = bpf_program__fd(skel->progs.meshd_tc_egress);
    int tcx_err = 0;
    if (!force_clsact) {
      // libbpf 1.1 has no tcx API, but bpf_link_create passes the attach type through.
      int fd = bpf_link_create(prog, ifindex, static_cast<bpf_attach_type>(kBpfTcxEgress), nullptr);
      if (fd >= 0) {
        link_fds.emplace_back(fd);
        attachments.push_back({"meshd_tc_egress", ifname, "tcx"});
        features.tcx = true;
        return {};
      }
      tcx_err = errno;
    }
    TcClsactAttachment a;
    a.hook.sz = sizeof a.hook;
    a.hook.ifindex = ifindex;
    a.hook.attach_point = BPF_TC_EGRESS;
    int err = bpf_tc_hook_create(&a.hook);
    if (err != 0 && err != -EEXIST) {
      return fail("tc_attach",
                  "creating clsact qdisc on " + ifname + ": " + errno_text(err) +
                      (force_clsact ? "" : "; tcx failed too: " + errno_text(tcx_err)));
    }
    a.created_hook = (err == 0);
    a.opts.sz = sizeof a.opts;
    a.opts.prog_fd = prog;
    err = bpf_tc_attach(&a.hook, &a.opts);
    if (err != 0) {
      if (a.created_hook) bpf_tc_hook_destroy(&a.hook);
      return fail("tc_attach", "attaching tc filter on " + ifname + " egress: " + errno_text(err));
    }
    a.opts.prog_fd = 0;  // detach addresses the filter by handle + priority
    clsact.push_back(a);
    attachments.push_back({"meshd_tc_egress", ifname, "clsact"});
    return {};
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
  impl->skel = meshd_bpf::open();
  if (impl->skel == nullptr) {
    return fail("bpf_open", "opening the meshd BPF object: " + errno_text(errno));
  }

  if (!config.pin_path.empty()) {
    if (auto r = ensure_pin_dir(config.pin_path); !r) return std::unexpected(r.error());
    // The ring buffer is not pinned: events are only useful to the process reading them.
    for (bpf_map* map : {impl->skel->maps.meshd_block_v4, impl->skel->maps.meshd_block_v6,
                         impl->skel->maps.meshd_exact_v4, impl->skel->maps.meshd_exact_v6,
                         impl->skel->maps.meshd_v4_filter, impl->skel->maps.meshd_v4_tfilt,
                         impl->skel->maps.meshd_counters}) {
      std::string file = pin_file(config.pin_path, bpf_map__name(map));
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
                               "removed)") +
                    ": " + errno_text(err));
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

  BpfLoader loader(std::move(impl));
  spdlog::info(
      "bpf: loaded (maps {}); attached: {}",
      config.pin_path.empty() ? std::string("not pinned") : "pinned under " + config.pin_path,
      loader.describe());
  return loader;
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
    out += a.program + " -> " + a.target + " (" + a.mode + ")";
  }
  return out;
}

}  // namespace meshd::sensor
