#include "sensor/nft_enforcer.hpp"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include <spdlog/spdlog.h>

#include "meshd/common/clock.hpp"
#include "sensor/dryrun_enforcer.hpp"  // check_rule
#include "sensor/nft_enforcer_netlink.hpp"

namespace meshd::sensor {
namespace {

using nft::SetKind;

template <class T, void (*Free)(const T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using TablePtr = std::unique_ptr<nftnl_table, Deleter<nftnl_table, nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, Deleter<nftnl_chain, nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, Deleter<nftnl_rule, nftnl_rule_free>>;
using SetPtr = std::unique_ptr<nftnl_set, Deleter<nftnl_set, nftnl_set_free>>;

template <class P, class F>
P make(F alloc) {
  P p(alloc());
  if (!p) throw std::bad_alloc();
  return p;
}

// nft's datatype ids, so that `nft list` prints the keys as addresses.
constexpr std::uint32_t kTypeIpv4Addr = 7;
constexpr std::uint32_t kTypeIpv6Addr = 8;

int key_bytes(SetKind s) {
  return nft::family_of(s) == Family::v4 ? 4 : 16;
}
std::uint32_t set_id(SetKind s) {
  return static_cast<std::uint32_t>(s) + 1;
}
std::string set_name(SetKind s) {
  return std::string(nft::kSetNames[static_cast<int>(s)]);
}

// meta nfproto <proto>; payload (saddr|daddr) -> reg1; lookup @set; counter; drop
// `source`: match the packet's source address (input) instead of its destination (output).
void add_drop_rule(nft::Batch& b, const std::string& table, const char* chain, SetKind set,
                   bool source) {
  const bool v6 = nft::family_of(set) == Family::v6;
  auto r = make<RulePtr>(nftnl_rule_alloc);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);

  auto* meta = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(meta, NFTNL_EXPR_META_KEY, NFT_META_NFPROTO);
  nftnl_expr_set_u32(meta, NFTNL_EXPR_META_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r.get(), meta);

  auto* cmp = nftnl_expr_alloc("cmp");
  const std::uint8_t proto = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  nftnl_expr_set_u32(cmp, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp, NFTNL_EXPR_CMP_DATA, &proto, sizeof(proto));
  nftnl_rule_add_expr(r.get(), cmp);

  auto* payload = nftnl_expr_alloc("payload");
  // IPv4 header: saddr at 12, daddr at 16; IPv6 header: saddr at 8, daddr at 24.
  const std::uint32_t offset = v6 ? (source ? 8 : 24) : (source ? 12 : 16);
  nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
  nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(payload, NFTNL_EXPR_PAYLOAD_LEN, v6 ? 16 : 4);
  nftnl_rule_add_expr(r.get(), payload);

  auto* lookup = nftnl_expr_alloc("lookup");
  nftnl_expr_set_u32(lookup, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(lookup, NFTNL_EXPR_LOOKUP_SET, set_name(set).c_str());
  nftnl_expr_set_u32(lookup, NFTNL_EXPR_LOOKUP_SET_ID, set_id(set));
  nftnl_rule_add_expr(r.get(), lookup);

  nftnl_rule_add_expr(r.get(), nftnl_expr_alloc("counter"));

  auto* verdict = nftnl_expr_alloc("immediate");
  nftnl_expr_set_u32(verdict, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(verdict, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
  nftnl_rule_add_expr(r.get(), verdict);

  nlmsghdr* nlh = b.begin_message(
      NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
      std::string("add rule ") + chain + (source ? " saddr @" : " daddr @") + set_name(set));
  nftnl_rule_nlmsg_build_payload(nlh, r.get());
  b.end_message();
}

}  // namespace

NftEnforcer::NftEnforcer(NftOptions options, std::unique_ptr<nft::Socket> sock,
                         std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      sock_(std::move(sock)),
      log_(logger ? std::move(logger) : spdlog::default_logger()) {}

NftEnforcer::~NftEnforcer() = default;

Result<std::unique_ptr<NftEnforcer>> NftEnforcer::create(NftOptions options, TimeMs now,
                                                         std::shared_ptr<spdlog::logger> logger) {
  if (options.table.empty() || options.table.size() > 255)
    return fail("nft_bad_option", "nftables table name must be 1..255 characters");
  auto sock = nft::Socket::open();
  if (!sock) return std::unexpected(sock.error());
  std::unique_ptr<NftEnforcer> e(new NftEnforcer(
      std::move(options), std::make_unique<nft::Socket>(std::move(*sock)), std::move(logger)));

  // Linux >= 6.3 has DESTROY (delete-if-present); probe it with a table that cannot exist.
  {
    nft::Batch probe(e->sock_->next_seq(8));
    auto t = make<TablePtr>(nftnl_table_alloc);
    const std::string probe_name = "meshd-probe-" + std::to_string(::getpid());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, probe_name.c_str());
    nlmsghdr* nlh = probe.begin_message(nft::kMsgDestroyTable, 0, "probe for DESTROY support");
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    probe.end_message();
    auto r = e->sock_->send(probe);
    if (!r && r.error().code == "nft_permission")
      return fail("nft_permission", "managing nftables needs CAP_NET_ADMIN: " + r.error().message);
    e->has_destroy_ = r.has_value() && e->options_.prefer_destroy;
  }

  auto exists = e->table_exists();
  if (!exists) return std::unexpected(exists.error());
  if (*exists) {
    if (auto ok = e->check_sets_are_ours(); !ok) return std::unexpected(ok.error());
    if (auto ok = e->resync(now); !ok) return std::unexpected(ok.error());
    e->planner_.adopt_owners(now);
    e->planner_.begin();
    e->planner_.touch_all();
    if (auto ok = e->sync(now); !ok) {
      e->planner_.rollback();
      return std::unexpected(ok.error());
    }
    e->log_->info("nftables: adopted existing table inet {} with {} live rules", e->options_.table,
                  e->planner_.rules(now).size());
  } else {
    if (auto ok = e->create_table(); !ok) return std::unexpected(ok.error());
    e->log_->info("nftables: created table inet {} (priority {}, DESTROY {})", e->options_.table,
                  e->options_.priority, e->has_destroy_ ? "supported" : "not supported");
  }
  return e;
}

Result<bool> NftEnforcer::table_exists() {
  auto t = make<TablePtr>(nftnl_table_alloc);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, options_.table.c_str());
  auto r = sock_->request(
      NFT_MSG_GETTABLE, false,
      [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, t.get()); },
      [](const nlmsghdr*) {});
  if (r) return true;
  if (r.error().code == "nft_errno_" + std::to_string(ENOENT)) return false;
  return fail("nft_failed", "cannot query table inet " + options_.table + ": " + r.error().message);
}

Result<void> NftEnforcer::check_sets_are_ours() {
  auto req = make<SetPtr>(nftnl_set_alloc);
  nftnl_set_set_str(req.get(), NFTNL_SET_TABLE, options_.table.c_str());
  std::array<bool, nft::kAllSets.size()> found{};
  auto r = sock_->request(
      NFT_MSG_GETSET, true, [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, req.get()); },
      [&](const nlmsghdr* nlh) {
        auto s = make<SetPtr>(nftnl_set_alloc);
        if (nftnl_set_nlmsg_parse(nlh, s.get()) < 0) return;
        const char* name = nftnl_set_get_str(s.get(), NFTNL_SET_NAME);
        const char* table = nftnl_set_get_str(s.get(), NFTNL_SET_TABLE);
        if (!name || !table || options_.table != table) return;
        for (SetKind k : nft::kAllSets)
          if (set_name(k) == name) {
            const std::uint32_t flags = nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS);
            found[static_cast<int>(k)] = (flags & NFT_SET_INTERVAL) && (flags & NFT_SET_TIMEOUT) &&
                                         nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_LEN) ==
                                             static_cast<std::uint32_t>(key_bytes(k));
          }
      });
  if (!r)
    return fail("nft_failed",
                "cannot list the sets of table inet " + options_.table + ": " + r.error().message);
  for (SetKind k : nft::kAllSets)
    if (!found[static_cast<int>(k)])
      return fail("nft_foreign_table", "table inet " + options_.table +
                                           " exists but has no interval set '" + set_name(k) +
                                           "' of meshd's shape; refusing to touch it");
  return {};
}

Result<void> NftEnforcer::create_table() {
  nft::Batch b(sock_->next_seq(64));
  const std::string& table = options_.table;
  {
    auto t = make<TablePtr>(nftnl_table_alloc);
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nlmsghdr* nlh =
        b.begin_message(NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL, "add table inet " + table);
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    b.end_message();
  }
  for (SetKind k : nft::kAllSets) {
    auto s = make<SetPtr>(nftnl_set_alloc);
    nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
    nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set_name(k).c_str());
    nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_INTERVAL | NFT_SET_TIMEOUT);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE,
                      nft::family_of(k) == Family::v4 ? kTypeIpv4Addr : kTypeIpv6Addr);
    nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, static_cast<std::uint32_t>(key_bytes(k)));
    nftnl_set_set_u32(s.get(), NFTNL_SET_ID, set_id(k));
    nlmsghdr* nlh =
        b.begin_message(NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL, "add set " + set_name(k));
    nftnl_set_nlmsg_build_payload(nlh, s.get());
    b.end_message();
  }
  struct ChainSpec {
    const char* name;
    std::uint32_t hook;
  };
  for (ChainSpec c : {ChainSpec{"input", NF_INET_LOCAL_IN}, ChainSpec{"output", NF_INET_LOCAL_OUT},
                      ChainSpec{"forward", NF_INET_FORWARD}}) {
    auto ch = make<ChainPtr>(nftnl_chain_alloc);
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_NAME, c.name);
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_HOOKNUM, c.hook);
    nftnl_chain_set_s32(ch.get(), NFTNL_CHAIN_PRIO, options_.priority);
    nftnl_chain_set_str(ch.get(), NFTNL_CHAIN_TYPE, "filter");
    nftnl_chain_set_u32(ch.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    nlmsghdr* nlh =
        b.begin_message(NFT_MSG_NEWCHAIN, NLM_F_CREATE, std::string("add chain ") + c.name);
    nftnl_chain_nlmsg_build_payload(nlh, ch.get());
    b.end_message();
  }
  for (SetKind k : nft::kAllSets) {
    const Direction d = nft::direction_of(k);
    if (covers_egress(d)) {
      add_drop_rule(b, table, "output", k, false);
      add_drop_rule(b, table, "forward", k, false);
    }
    if (covers_ingress(d)) {
      add_drop_rule(b, table, "input", k, true);
      add_drop_rule(b, table, "forward", k, true);
    }
  }
  auto r = sock_->send(b);
  if (!r) {
    if (r.error().code == "nft_permission")
      return fail("nft_permission", "creating nftables table inet " + table +
                                        " needs CAP_NET_ADMIN: " + r.error().message);
    return r;
  }
  return {};
}

Result<void> NftEnforcer::resync(TimeMs now) {
  for (SetKind k : nft::kAllSets) {
    auto elems = nft::dump_elements(*sock_, options_.table, set_name(k), key_bytes(k));
    if (!elems)
      return fail("nft_failed", "cannot read set " + set_name(k) + " of table inet " +
                                    options_.table + ": " + elems.error().message);
    // Sort by key with end elements first: the end of one range and the start of the
    // adjacent one share a key.
    std::ranges::sort(*elems, [](const nft::WireElement& a, const nft::WireElement& b) {
      return a.key != b.key ? a.key < b.key : (a.end && !b.end);
    });
    const Addr128 fmax = family_max(nft::family_of(k));
    std::map<Addr128, nft::Piece> pieces;
    constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
    std::size_t open = kNone;  // index of the start element whose end we are looking for
    auto close = [&](Addr128 hi) {
      const nft::WireElement& start = (*elems)[open];
      nft::Piece p;
      p.lo = start.key;
      p.hi = hi;
      p.owner = nft::parse_owner_comment(start.comment);
      if (p.owner)
        p.expires_at = p.owner->expires_at;
      else
        p.expires_at = start.expiration_ms ? now + static_cast<TimeMs>(*start.expiration_ms)
                                           : std::numeric_limits<TimeMs>::max();
      pieces.emplace(p.lo, p);  // trivially copyable
      open = kNone;
    };
    for (std::size_t i = 0; i < elems->size(); ++i) {
      const auto& w = (*elems)[i];
      if (w.end) {
        if (open != kNone && w.key > (*elems)[open].key) close(w.key - 1);
        continue;
      }
      if (open != kNone) close(w.key - 1);  // a start without its end: treat as ending here
      open = i;
    }
    if (open != kNone) close(fmax);
    planner_.set_installed(k, std::move(pieces));
  }
  return {};
}

Result<void> NftEnforcer::send_ops(const std::vector<nft::ElementOp>& ops, TimeMs now) {
  std::array<std::vector<nft::WireElement>, nft::kAllSets.size()> dels, adds;
  for (const auto& op : ops) {
    const Addr128 fmax = family_max(nft::family_of(op.set));
    const int i = static_cast<int>(op.set);
    if (!op.add) {
      dels[i].push_back(nft::WireElement{op.piece.lo, false, {}, {}, {}, false});
      if (op.piece.hi != fmax)
        dels[i].push_back(nft::WireElement{op.piece.hi + 1, true, {}, {}, {}, false});
      continue;
    }
    nft::WireElement start;
    start.key = op.piece.lo;
    // Never 0: an element without timeout would never expire (I4). The kernel keeps timeouts
    // in jiffies, rounded down (up to 10 ms at HZ=100): the slack keeps it from lifting a
    // block before the rule's expiry, so list() and the kernel agree at the boundary.
    constexpr DurationMs kJiffySlackMs = 10;
    start.timeout_ms = static_cast<std::uint64_t>(
        std::clamp<TimeMs>(op.piece.expires_at - now, 1, options_.max_timeout_ms) + kJiffySlackMs);
    if (op.piece.owner) start.comment = nft::owner_comment(*op.piece.owner);
    start.open_interval = op.piece.hi == fmax;
    adds[i].push_back(std::move(start));
    if (op.piece.hi != fmax)
      adds[i].push_back(nft::WireElement{op.piece.hi + 1, true, {}, {}, {}, false});
  }
  nft::Batch b(sock_->next_seq(0));
  std::size_t added = 0, deleted = 0;
  for (SetKind k : nft::kAllSets) {
    const auto& d = dels[static_cast<int>(k)];
    if (d.empty()) continue;
    nft::append_elements(
        b, has_destroy_ ? nft::kMsgDestroySetElem : static_cast<std::uint16_t>(NFT_MSG_DELSETELEM),
        0, options_.table, set_name(k), key_bytes(k), d);
    deleted += d.size();
  }
  for (SetKind k : nft::kAllSets) {
    const auto& a = adds[static_cast<int>(k)];
    if (a.empty()) continue;
    nft::append_elements(b, NFT_MSG_NEWSETELEM, NLM_F_CREATE, options_.table, set_name(k),
                         key_bytes(k), a);
    added += a.size();
  }
  auto r = sock_->send(b);
  sock_->next_seq(b.last_seq() - b.first_seq() + 1);
  ++counters_.batches;
  if (!r) {
    ++counters_.batch_failures;
    return r;
  }
  counters_.elements_added += added;
  counters_.elements_deleted += deleted;
  return {};
}

Result<void> NftEnforcer::sync(TimeMs now) {
  auto ops = planner_.plan(now);
  Result<void> r;
  if (!ops.empty()) r = send_ops(ops, now);
  if (!r && r.error().code == "nft_drift") {
    // The kernel's sets are not what we believed (an element expired in between, someone
    // edited our table): re-read them and plan everything against the truth, once.
    log_->warn("nftables: {}; re-reading table inet {} and retrying", r.error().message,
               options_.table);
    ++counters_.resyncs;
    if (auto rs = resync(now); !rs) return rs;
    planner_.touch_all();
    ops = planner_.plan(now);
    r = ops.empty() ? Result<void>{} : send_ops(ops, now);
  }
  if (!r) return r;
  planner_.commit(ops);
  return {};
}

void NftEnforcer::set_protected(std::vector<Prefix> protected_prefixes) {
  protected_ = std::move(protected_prefixes);
  if (destroyed_) return;
  const TimeMs now = wall_now_ms();
  planner_.begin();
  std::size_t dropped = 0;
  for (const auto& r : planner_.rules(now))
    if (check_rule(r, protected_)) {
      planner_.erase(r.prefix);
      ++dropped;
    }
  if (!dropped) {
    planner_.commit({});
    return;
  }
  if (auto s = sync(now); !s) {
    planner_.rollback();
    log_->error("nftables: cannot lift {} rules that are now protected: {}", dropped,
                s.error().message);
    return;
  }
  log_->warn("nftables: lifted {} rules that overlap the new protected list", dropped);
}

Result<ApplyReport> NftEnforcer::apply(std::span<const BlockRule> rules, TimeMs now) {
  if (destroyed_)
    return fail("nft_destroyed", "nftables table inet " + options_.table + " was destroyed");
  planner_.begin();
  planner_.prune(now);
  ApplyReport report;
  for (const auto& r : rules) {
    if (auto err = check_rule(r, protected_)) {
      report.refused.emplace_back(r, *err);
      continue;
    }
    if (r.expires_at <= now) continue;
    planner_.upsert(r);
    ++report.applied;
  }
  if (auto s = sync(now); !s) {
    planner_.rollback();
    return std::unexpected(s.error());
  }
  for (const auto& [rule, err] : report.refused)
    log_->warn("nftables: refused rule {} for {}: {}", rule.rule_id, rule.prefix.to_string(),
               err.message);
  return report;
}

Result<std::size_t> NftEnforcer::remove(std::span<const Prefix> prefixes) {
  if (destroyed_)
    return fail("nft_destroyed", "nftables table inet " + options_.table + " was destroyed");
  const TimeMs now = wall_now_ms();
  planner_.begin();
  planner_.prune(now);
  std::size_t removed = 0;
  for (const auto& p : prefixes) removed += planner_.erase(p) ? 1 : 0;
  if (auto s = sync(now); !s) {
    planner_.rollback();
    return std::unexpected(s.error());
  }
  return removed;
}

Result<std::vector<BlockRule>> NftEnforcer::list(TimeMs now) {
  if (destroyed_) return std::vector<BlockRule>{};
  return planner_.rules(now);
}

Result<void> NftEnforcer::reload_from_kernel(TimeMs now) {
  if (destroyed_)
    return fail("nft_destroyed", "nftables table inet " + options_.table + " was destroyed");
  ++counters_.resyncs;
  if (auto r = resync(now); !r) return r;
  planner_.begin();
  planner_.touch_all();
  if (auto s = sync(now); !s) {
    planner_.rollback();
    return s;
  }
  return {};
}

EnforcerStats NftEnforcer::stats() const {
  if (destroyed_) return last_stats_;
  last_stats_.active_rules = planner_.rules(wall_now_ms()).size();
  auto req = make<RulePtr>(nftnl_rule_alloc);
  nftnl_rule_set_str(req.get(), NFTNL_RULE_TABLE, options_.table.c_str());
  std::uint64_t dropped = 0;
  auto r = sock_->request(
      NFT_MSG_GETRULE, true, [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, req.get()); },
      [&](const nlmsghdr* nlh) {
        auto rule = make<RulePtr>(nftnl_rule_alloc);
        if (nftnl_rule_nlmsg_parse(nlh, rule.get()) < 0) return;
        auto* it = nftnl_expr_iter_create(rule.get());
        if (!it) return;
        for (auto* e = nftnl_expr_iter_next(it); e; e = nftnl_expr_iter_next(it))
          if (std::string_view(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "counter")
            dropped += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
        nftnl_expr_iter_destroy(it);
      });
  if (r) last_stats_.packets_dropped = dropped;
  return last_stats_;
}

Result<void> NftEnforcer::destroy() {
  if (destroyed_) return {};
  nft::Batch b(sock_->next_seq(8));
  auto t = make<TablePtr>(nftnl_table_alloc);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, options_.table.c_str());
  nlmsghdr* nlh = b.begin_message(NFT_MSG_DELTABLE, 0, "delete table inet " + options_.table);
  nftnl_table_nlmsg_build_payload(nlh, t.get());
  b.end_message();
  auto r = sock_->send(b);
  if (!r && r.error().code != "nft_drift") return r;  // drift = already gone: fine
  destroyed_ = true;
  log_->info("nftables: deleted table inet {}", options_.table);
  return {};
}

Result<bool> NftEnforcer::remove_table(const std::string& table) {
  if (table.empty() || table.size() > 255)
    return fail("nft_bad_option", "nftables table name must be 1..255 characters");
  auto sock = nft::Socket::open();
  if (!sock) return std::unexpected(sock.error());
  NftOptions options;
  options.table = table;
  std::unique_ptr<NftEnforcer> e(new NftEnforcer(
      std::move(options), std::make_unique<nft::Socket>(std::move(*sock)), nullptr));
  auto exists = e->table_exists();
  if (!exists) return std::unexpected(exists.error());
  if (!*exists) return false;
  if (auto ok = e->check_sets_are_ours(); !ok) return std::unexpected(ok.error());
  if (auto ok = e->destroy(); !ok) return std::unexpected(ok.error());
  return true;
}

}  // namespace meshd::sensor
