#include "sensor/nft_enforcer_intervals.hpp"

#include <algorithm>
#include <charconv>

namespace meshd::sensor::nft {
namespace {

int fam_index(Family f) {
  return f == Family::v4 ? 0 : 1;
}

bool same_rule(const BlockRule& a, const BlockRule& b) {
  return a.prefix == b.prefix && a.direction == b.direction && a.rule_id == b.rule_id &&
         a.expires_at == b.expires_at;
}

}  // namespace

bool Piece::same_as(const Piece& o) const {
  if (lo != o.lo || hi != o.hi || expires_at != o.expires_at ||
      owner.has_value() != o.owner.has_value())
    return false;
  return !owner || same_rule(*owner, *o.owner);
}

std::string owner_comment(const BlockRule& r) {
  return "rule=" + std::to_string(r.rule_id) + " prefix=" + r.prefix.to_string() +
         " dir=" + std::string(to_string(r.direction)) + " exp=" + std::to_string(r.expires_at);
}

std::optional<BlockRule> parse_owner_comment(std::string_view c) {
  BlockRule r;
  bool have[4] = {};
  while (!c.empty()) {
    auto sp = c.find(' ');
    auto tok = c.substr(0, sp);
    c = sp == std::string_view::npos ? std::string_view{} : c.substr(sp + 1);
    auto eq = tok.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    auto k = tok.substr(0, eq), v = tok.substr(eq + 1);
    auto num = [&](auto& out) {
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
      return ec == std::errc{} && p == v.data() + v.size();
    };
    if (k == "rule") {
      if (!num(r.rule_id)) return std::nullopt;
      have[0] = true;
    } else if (k == "prefix") {
      auto p = Prefix::parse(v);
      if (!p) return std::nullopt;
      r.prefix = *p;
      have[1] = true;
    } else if (k == "dir") {
      auto d = parse_direction(v);
      if (!d) return std::nullopt;
      r.direction = *d;
      have[2] = true;
    } else if (k == "exp") {
      if (!num(r.expires_at)) return std::nullopt;
      have[3] = true;
    }
  }
  if (!(have[0] && have[1] && have[2] && have[3])) return std::nullopt;
  return r;
}

IntervalPlanner::Key IntervalPlanner::key_of(const Prefix& p) {
  return Key{static_cast<std::uint8_t>(p.family), to_addr(p), p.len};
}

void IntervalPlanner::record_undo(const Key& k) {
  if (!in_txn_) return;
  auto it = rules_.find(k);
  undo_.emplace_back(k, it == rules_.end() ? std::nullopt : std::optional<BlockRule>(it->second));
}

void IntervalPlanner::mark(const Prefix& p) {
  touched_.push_back(Range{p.family, to_addr(p), last_addr(p)});
}

void IntervalPlanner::upsert(const BlockRule& rule) {
  const Key k = key_of(rule.prefix);
  record_undo(k);
  auto [it, fresh] = rules_.insert_or_assign(k, rule);
  if (fresh) ++len_count_[fam_index(rule.prefix.family)][rule.prefix.len];
  mark(rule.prefix);
}

bool IntervalPlanner::erase(const Prefix& prefix) {
  const Key k = key_of(prefix);
  // Even without a rule, pieces of this range may be installed (adopted from the kernel):
  // marking it lets plan() clean them up.
  mark(prefix);
  auto it = rules_.find(k);
  if (it == rules_.end()) return false;
  record_undo(k);
  rules_.erase(it);
  --len_count_[fam_index(prefix.family)][prefix.len];
  return true;
}

void IntervalPlanner::touch_all() {
  touched_.push_back(Range{Family::v4, 0, family_max(Family::v4)});
  touched_.push_back(Range{Family::v6, 0, family_max(Family::v6)});
}

void IntervalPlanner::begin() {
  in_txn_ = true;
  undo_.clear();
}

void IntervalPlanner::rollback() {
  for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) {
    const auto& [k, old] = *it;
    auto& counts = len_count_[k.family == static_cast<std::uint8_t>(Family::v4) ? 0 : 1];
    const bool present = rules_.contains(k);
    if (old) {
      if (!present) ++counts[k.len];
      rules_.insert_or_assign(k, *old);
    } else if (present) {
      --counts[k.len];
      rules_.erase(k);
    }
  }
  undo_.clear();
  touched_.clear();
  in_txn_ = false;
}

const BlockRule* IntervalPlanner::outermost_containing(Family f, Addr128 addr) const {
  const auto& counts = len_count_[fam_index(f)];
  const int max = family_bits(f);
  for (int len = 0; len <= max; ++len) {
    if (!counts[len]) continue;
    auto it = rules_.find(
        Key{static_cast<std::uint8_t>(f), addr & net_mask(f, len), static_cast<std::uint8_t>(len)});
    if (it != rules_.end()) return &it->second;
  }
  return nullptr;
}

// Grows a range until no rule and no installed piece crosses its boundary, so that the
// pieces inside it can be recomputed from the rules inside it alone.
IntervalPlanner::Range IntervalPlanner::close_range(Range r) const {
  for (bool changed = true; changed;) {
    changed = false;
    for (Addr128 edge : {r.lo, r.hi}) {
      if (const BlockRule* rule = outermost_containing(r.family, edge)) {
        const Addr128 lo = to_addr(rule->prefix), hi = last_addr(rule->prefix);
        if (lo < r.lo) r.lo = lo, changed = true;
        if (hi > r.hi) r.hi = hi, changed = true;
      }
    }
    for (SetKind s : kAllSets) {
      if (family_of(s) != r.family) continue;
      const auto& pieces = installed_[static_cast<int>(s)];
      for (Addr128 edge : {r.lo, r.hi}) {
        auto it = pieces.upper_bound(edge);
        if (it == pieces.begin()) continue;
        --it;
        if (it->second.hi < edge) continue;  // ends before the edge
        if (it->second.lo < r.lo) r.lo = it->second.lo, changed = true;
        if (it->second.hi > r.hi) r.hi = it->second.hi, changed = true;
      }
    }
  }
  return r;
}

std::vector<Piece> IntervalPlanner::desired(SetKind set, const Range& r, TimeMs now) const {
  struct Frame {
    Addr128 hi;
    const BlockRule* owner;  // the covering rule with the latest expiry
  };
  const Family f = r.family;
  const Addr128 fmax = family_max(f);
  std::vector<Piece> out;
  auto emit = [&](Addr128 a, Addr128 b, const BlockRule* owner) {
    if (!out.empty() && out.back().hi != fmax && out.back().hi + 1 == a && out.back().owner &&
        same_rule(*out.back().owner, *owner)) {
      out.back().hi = b;  // same owner on both sides of a shorter-lived inner rule: one piece
      return;
    }
    out.push_back(Piece{a, b, owner->expires_at, *owner});
  };
  std::vector<Frame> stack;
  Addr128 cursor = r.lo;
  bool exhausted = false;  // emitted up to the family's last address
  auto close_top = [&] {
    Frame fr = stack.back();
    stack.pop_back();
    if (exhausted || cursor > fr.hi) return;
    emit(cursor, fr.hi, fr.owner);
    if (fr.hi == fmax)
      exhausted = true;
    else
      cursor = fr.hi + 1;
  };
  const Direction direction = direction_of(set);
  // Rules are ordered by (family, first address, length): a pre-order walk of the nesting.
  for (auto it = rules_.lower_bound(Key{static_cast<std::uint8_t>(f), r.lo, 0});
       it != rules_.end() && it->first.family == static_cast<std::uint8_t>(f) &&
       it->first.lo <= r.hi;
       ++it) {
    const BlockRule& rule = it->second;
    if (rule.expires_at <= now) continue;
    if (rule.direction != direction) continue;
    const Addr128 lo = it->first.lo, hi = last_addr(rule.prefix);
    while (!stack.empty() && stack.back().hi < lo) close_top();
    if (!stack.empty() && cursor < lo) emit(cursor, lo - 1, stack.back().owner);
    cursor = lo;
    const BlockRule* owner = &rule;
    if (!stack.empty() && stack.back().owner->expires_at >= rule.expires_at)
      owner = stack.back().owner;
    stack.push_back(Frame{hi, owner});
  }
  while (!stack.empty()) close_top();
  return out;
}

std::vector<ElementOp> IntervalPlanner::plan(TimeMs now) {
  std::vector<Range> regions;
  regions.reserve(touched_.size());
  for (const Range& t : touched_) regions.push_back(close_range(t));
  touched_.clear();
  std::ranges::sort(regions, [](const Range& a, const Range& b) {
    return std::tie(a.family, a.lo) < std::tie(b.family, b.lo);
  });
  std::vector<Range> merged;
  for (const Range& r : regions) {
    if (!merged.empty() && merged.back().family == r.family && r.lo <= merged.back().hi) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
      continue;
    }
    merged.push_back(r);
  }
  std::vector<ElementOp> deletes, adds;
  for (const Range& r : merged) {
    for (SetKind s : kAllSets) {
      if (family_of(s) != r.family) continue;
      std::vector<Piece> want = desired(s, r, now);
      const auto& have = installed_[static_cast<int>(s)];
      auto want_it = want.begin();
      auto have_it = have.lower_bound(r.lo);
      // Both sequences are sorted by first address: a merge walk finds the differences.
      while (want_it != want.end() || (have_it != have.end() && have_it->first <= r.hi)) {
        const bool have_ok = have_it != have.end() && have_it->first <= r.hi;
        if (have_ok && want_it != want.end() && have_it->second.same_as(*want_it)) {
          ++have_it, ++want_it;
        } else if (have_ok && (want_it == want.end() || have_it->first <= want_it->lo)) {
          deletes.push_back(ElementOp{s, false, have_it->second});
          ++have_it;
        } else {
          adds.push_back(ElementOp{s, true, *want_it});
          ++want_it;
        }
      }
    }
  }
  deletes.insert(deletes.end(), std::make_move_iterator(adds.begin()),
                 std::make_move_iterator(adds.end()));
  return deletes;
}

void IntervalPlanner::commit(const std::vector<ElementOp>& ops) {
  for (const auto& op : ops) {
    auto& pieces = installed_[static_cast<int>(op.set)];
    if (op.add)
      pieces.insert_or_assign(op.piece.lo, op.piece);
    else if (auto it = pieces.find(op.piece.lo); it != pieces.end() && it->second.same_as(op.piece))
      pieces.erase(it);
  }
  undo_.clear();
  in_txn_ = false;
}

void IntervalPlanner::prune(TimeMs now) {
  for (auto it = rules_.begin(); it != rules_.end();) {
    if (it->second.expires_at <= now) {
      record_undo(it->first);
      --len_count_[it->first.family == static_cast<std::uint8_t>(Family::v4) ? 0 : 1]
                  [it->first.len];
      it = rules_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& pieces : installed_)
    std::erase_if(pieces, [&](const auto& kv) { return kv.second.expires_at <= now; });
}

void IntervalPlanner::set_installed(SetKind set, std::map<Addr128, Piece> pieces) {
  installed_[static_cast<int>(set)] = std::move(pieces);
}

void IntervalPlanner::adopt_owners(TimeMs now) {
  for (const auto& pieces : installed_)
    for (const auto& [lo, piece] : pieces)
      if (piece.owner && piece.owner->expires_at > now) {
        const Key k = key_of(piece.owner->prefix);
        auto [it, fresh] = rules_.try_emplace(k, *piece.owner);
        if (fresh) ++len_count_[fam_index(piece.owner->prefix.family)][piece.owner->prefix.len];
      }
}

std::vector<BlockRule> IntervalPlanner::rules(TimeMs now) const {
  std::vector<BlockRule> out;
  for (const auto& [k, r] : rules_)
    if (r.expires_at > now) out.push_back(r);
  return out;
}

}  // namespace meshd::sensor::nft
