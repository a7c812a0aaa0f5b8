#include "meshd/app/enforcement.hpp"

#include "meshd/common/clock.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "meshd/common/fd.hpp"
#include "meshd/common/numbers.hpp"
#include "sensor/bpf_enforcer.hpp"
#include "sensor/bpf_loader.hpp"
#include "sensor/bpf_ringbuf.hpp"
#include "sensor/dryrun_enforcer.hpp"
#include "sensor/nft_enforcer.hpp"
#include "sensor/pod_identity.hpp"

namespace meshd::app {
namespace {

std::string read_text(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> cgroup_dir(const AppConfig& config) {
  if (!config.enforcement.cgroup.empty()) return config.enforcement.cgroup;
  return sensor::find_cgroup2_mount(read_text("/proc/mounts"));
}

std::vector<Prefix> plain(const std::vector<trust::ProtectedPrefix>& list) {
  std::vector<Prefix> out;
  for (const auto& p : list) out.push_back(p.prefix);
  for (const auto& p : trust::builtin_protected()) out.push_back(p.prefix);
  return out;
}

sensor::BlockRule rule_of(const Prefix& p, Direction d, TimeMs expires_at) {
  return sensor::BlockRule{p, d, rule_id_of(p), expires_at};
}

}  // namespace

std::uint64_t rule_id_of(const Prefix& prefix) {
  std::uint64_t h = 1469598103934665603ull;
  for (char c : prefix.to_string()) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

Result<std::unique_ptr<Enforcement>> Enforcement::create(const AppConfig& config) {
  std::unique_ptr<Enforcement> e(new Enforcement());
  const auto& ec = config.enforcement;
  const bool want_auto = ec.backend == "auto";
  std::string why_not_bpf, why_not_nft;

  if (want_auto || ec.backend == "bpf") {
    sensor::BpfLoaderConfig lc;
    lc.pin_path = ec.pin_path;
    lc.interfaces = ec.interfaces;
    if (config.sensor.enabled) {
      auto dir = cgroup_dir(config);
      if (dir)
        lc.cgroup_path = *dir;
      else
        spdlog::warn("connect sensor off: {}", dir.error().message);
    }
    auto loader = sensor::BpfLoader::load(lc);
    if (loader) {
      auto enforcer = sensor::BpfEnforcer::from_loader(*loader);
      if (enforcer) {
        e->loader_ = std::make_unique<sensor::BpfLoader>(std::move(*loader));
        e->enforcer_ = std::make_unique<sensor::BpfEnforcer>(std::move(*enforcer));
        e->description_ = "bpf: " + e->loader_->describe();
        e->cgroup_path_ = lc.cgroup_path;
        if (!lc.cgroup_path.empty()) {
          auto src = sensor::RingbufEventSource::create(*e->loader_);
          if (src)
            e->events_ = std::make_unique<sensor::RingbufEventSource>(std::move(*src));
          else
            spdlog::warn("connect sensor off: {}", src.error().message);
        }
      } else {
        why_not_bpf = enforcer.error().message;
      }
    } else {
      why_not_bpf = loader.error().message;
    }
    if (!e->enforcer_ && !want_auto)
      return fail("enforcement_unavailable", "bpf backend: " + why_not_bpf);
    if (!e->enforcer_)
      spdlog::warn("bpf enforcement unavailable ({}); trying nftables", why_not_bpf);
  }
  if (!e->enforcer_ && (want_auto || ec.backend == "nftables")) {
    sensor::NftOptions options;
    options.table = ec.nft_table;
    auto nft = sensor::NftEnforcer::create(options, wall_now_ms());
    if (nft) {
      e->enforcer_ = std::move(*nft);
      e->description_ = "nftables: table inet " + ec.nft_table;
      if (!why_not_bpf.empty()) e->description_ += " (auto: bpf unavailable: " + why_not_bpf + ")";
    } else {
      why_not_nft = nft.error().message;
      if (!want_auto) return fail("enforcement_unavailable", "nftables backend: " + why_not_nft);
      spdlog::warn("nftables enforcement unavailable ({}); falling back to dryrun", why_not_nft);
    }
  }
  if (!e->enforcer_) {
    e->enforcer_ = std::make_unique<sensor::DryrunEnforcer>();
    e->description_ = "dryrun: blocks are logged, not enforced";
    if (want_auto) {
      e->not_enforcing_ =
          "enforcement.backend auto found no backend that enforces (bpf: " + why_not_bpf +
          "; nftables: " + why_not_nft +
          "); blocks are logged, not enforced. Set backend: dryrun to run "
          "like this on purpose";
      e->description_ += " (" + e->not_enforcing_ + ")";
      spdlog::error("{}", e->not_enforcing_);
    }
  }
  e->enforcer_->set_protected(plain(node_protected_prefixes(config)));
  spdlog::info("enforcement {}", e->description_);
  return e;
}

Enforcement::~Enforcement() = default;

void Enforcement::set_protected(const std::vector<trust::ProtectedPrefix>& list) {
  enforcer_->set_protected(plain(list));
}

EnforcementResult Enforcement::apply(const std::vector<trust::BlockChange>& changes, TimeMs now) {
  EnforcementResult result;
  std::vector<sensor::BlockRule> install;
  std::vector<Prefix> lift;
  // Changes are applied in order; consecutive runs of one kind are batched.
  auto flush = [&] {
    if (!install.empty()) {
      auto r = enforcer_->apply(install, now);
      if (!r) {
        result.errors.push_back(r.error());
      } else {
        result.applied += r->applied;
        for (auto& [rule, err] : r->refused) result.errors.push_back(err);
      }
      install.clear();
    }
    if (!lift.empty()) {
      auto r = enforcer_->remove(lift);
      if (!r)
        result.errors.push_back(r.error());
      else
        result.removed += *r;
      lift.clear();
    }
  };
  for (const auto& c : changes) {
    if (c.kind == trust::BlockChange::Kind::lift) {
      if (!install.empty()) flush();
      lift.push_back(c.prefix);
    } else {
      if (!lift.empty()) flush();
      install.push_back(rule_of(c.prefix, c.direction, c.expires_at));
    }
  }
  flush();
  return result;
}

EnforcementResult Enforcement::reconcile(const std::vector<trust::EnforcedBlock>& blocks,
                                         TimeMs now) {
  EnforcementResult result;
  auto installed = enforcer_->list(now);
  if (!installed) {
    result.errors.push_back(installed.error());
    return result;
  }
  // At a restart this runs over every held block (100k and more): a sorted vector of the
  // wanted prefixes (18 bytes each, not a map node of ~80), the installed list dropped
  // before installing, and the rules handed over in slices, so that the restart's peak
  // memory stays near the daemon's settled size.
  std::vector<Prefix> want;
  want.reserve(blocks.size());
  for (const auto& b : blocks) want.push_back(b.prefix);
  std::sort(want.begin(), want.end());
  std::vector<Prefix> stale;
  for (const auto& r : *installed)
    if (!std::binary_search(want.begin(), want.end(), r.prefix)) stale.push_back(r.prefix);
  std::vector<Prefix>().swap(want);
  installed->clear();
  installed->shrink_to_fit();
  if (!stale.empty()) {
    auto r = enforcer_->remove(stale);
    if (r)
      result.removed = *r;
    else
      result.errors.push_back(r.error());
  }
  constexpr std::size_t kSlice = 4096;
  std::vector<sensor::BlockRule> rules;
  rules.reserve(std::min(blocks.size(), kSlice));
  for (std::size_t k = 0; k < blocks.size(); k += kSlice) {
    rules.clear();
    for (std::size_t j = k; j < std::min(blocks.size(), k + kSlice); ++j)
      rules.push_back(rule_of(blocks[j].prefix, blocks[j].direction, blocks[j].expires_at));
    auto r = enforcer_->apply(rules, now);
    if (!r)
      result.errors.push_back(r.error());
    else {
      result.applied += r->applied;
      for (auto& [rule, err] : r->refused) result.errors.push_back(err);
    }
  }
  return result;
}

Result<std::size_t> Enforcement::prune() {
  if (auto* bpf = dynamic_cast<sensor::BpfEnforcer*>(enforcer_.get())) return bpf->prune_expired();
  return 0;  // the other backends expire their entries themselves
}

std::vector<trust::ProtectedPrefix> node_protected_prefixes(const AppConfig& config) {
  std::vector<trust::ProtectedPrefix> out;
  for (const auto& p : config.protected_prefixes) out.push_back({p, "configured protected", true});
  auto add_local = [&](const std::string& text, const char* reason) {
    if (auto p = Prefix::parse(text)) out.push_back({*p, reason, false});
  };
  // Own interface addresses.
  ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) == 0) {
    for (auto* i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      char buf[INET6_ADDRSTRLEN] = {};
      if (i->ifa_addr->sa_family == AF_INET)
        ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf,
                    sizeof buf);
      else if (i->ifa_addr->sa_family == AF_INET6)
        ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, buf,
                    sizeof buf);
      else
        continue;
      std::string addr = buf;
      if (auto pct = addr.find('%'); pct != std::string::npos) addr.resize(pct);
      add_local(addr, "own address");
    }
    ::freeifaddrs(ifs);
  }
  // Default gateways (IPv4 routing table: destination 0, gateway in little-endian hex).
  std::istringstream routes(read_text("/proc/net/route"));
  std::string line;
  std::getline(routes, line);
  while (std::getline(routes, line)) {
    std::istringstream f(line);
    std::string iface, dest, gw;
    f >> iface >> dest >> gw;
    auto v = parse_integer<std::uint32_t>(gw, 0, 0xffffffff, 16);
    if (dest == "00000000" && gw.size() == 8 && v && *v != 0) {
      out.push_back({Prefix::v4(__builtin_bswap32(*v), 32), "default gateway", false});
    }
  }
  // DNS servers.
  std::istringstream resolv(read_text("/etc/resolv.conf"));
  while (std::getline(resolv, line)) {
    std::istringstream f(line);
    std::string word, addr;
    f >> word >> addr;
    if (word == "nameserver") add_local(addr, "dns server");
  }
  // The Kubernetes API service, when running in a pod.
  if (const char* api = std::getenv("KUBERNETES_SERVICE_HOST")) add_local(api, "kubernetes api");
  return out;
}

namespace {

// True when something accepts connections on the control socket (a running meshd).
bool control_socket_answers(const std::string& path) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) return false;
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

}  // namespace

Result<std::string> detach_enforcement(const AppConfig& config) {
  const auto& ec = config.enforcement;
  if (control_socket_answers(config.control_socket)) {
    spdlog::warn(
        "a meshd answers on {}: it keeps running with nothing attached until it is "
        "stopped (stop it first, e.g. systemctl stop meshd)",
        config.control_socket);
  }
  std::vector<std::string> done;
  std::vector<std::string> failed;
  if (ec.backend == "auto" || ec.backend == "bpf") {
    if (ec.pin_path.empty()) {
      done.push_back("bpf: no pin_path, nothing pinned");
    } else if (auto r = sensor::BpfLoader::detach_pinned(ec.pin_path)) {
      done.push_back("bpf: " + r->describe() + " under " + ec.pin_path);
    } else {
      failed.push_back(r.error().message);
    }
  }
  if (ec.backend == "auto" || ec.backend == "nftables") {
    if (auto r = sensor::NftEnforcer::remove_table(ec.nft_table)) {
      done.push_back("nftables: " + std::string(*r ? "deleted" : "no") + " table inet " +
                     ec.nft_table);
    } else if (ec.backend == "nftables") {
      failed.push_back(r.error().message);
    } else {
      // auto: a host without usable nftables never had the table.
      done.push_back("nftables: not checked (" + r.error().message + ")");
    }
  }
  if (ec.backend == "dryrun") done.push_back("dryrun: nothing in the kernel");
  std::string text;
  for (const auto& d : done) text += (text.empty() ? "" : "; ") + d;
  if (!failed.empty()) {
    std::string errors;
    for (const auto& f : failed) errors += (errors.empty() ? "" : "; ") + f;
    return fail("detach_failed", errors + (text.empty() ? "" : " (done: " + text + ")"));
  }
  return text;
}

}  // namespace meshd::app
