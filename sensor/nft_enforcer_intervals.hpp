// Pure planning half of the nftables enforcer: turns block rules into the disjoint
// intervals an nftables interval set can hold, and into the minimal element changes.
//
// Why intervals and not one element per rule: an nftables interval set (rbtree) cannot hold
// overlapping elements, but block rules can nest (10.0.0.0/8 and 10.1.0.0/16 with a later
// expiry). The planner splits the union of the rules into disjoint pieces; each piece
// carries the LATEST expiry of the rules covering it, so the kernel's own per-element
// timeouts reproduce "blocked while any covering rule is live" exactly, with no daemon.
// The rule that gives a piece its expiry is its "owner" and is written into the element's
// comment, which is how list() reads the rules back after a restart. (A rule dominated
// everywhere by a covering rule with a later expiry owns no piece and is therefore not
// listed back; its effect is fully implied by the rule that covers it.)
//
// Pieces are kept per set (see SetKind).
// Not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshd/common/prefix.hpp"
#include "sensor/enforcer.hpp"

namespace meshd::sensor::nft {

// One set per (direction, family). A rule goes into the set of its exact direction, so a
// `both` rule is ONE element set (looked up by the output hook as a destination and by the
// input hook as a source) instead of two: half the kernel elements for the common case.
enum class SetKind : std::uint8_t { egress4, egress6, ingress4, ingress6, both4, both6 };
inline constexpr std::array<std::string_view, 6> kSetNames = {"egress4",  "egress6", "ingress4",
                                                              "ingress6", "both4",   "both6"};
inline constexpr std::array<SetKind, 6> kAllSets = {SetKind::egress4,  SetKind::egress6,
                                                    SetKind::ingress4, SetKind::ingress6,
                                                    SetKind::both4,    SetKind::both6};
inline Family family_of(SetKind s) {
  return s == SetKind::egress4 || s == SetKind::ingress4 || s == SetKind::both4 ? Family::v4
                                                                                : Family::v6;
}
inline Direction direction_of(SetKind s) {
  switch (s) {
    case SetKind::egress4:
    case SetKind::egress6:
      return Direction::egress;
    case SetKind::ingress4:
    case SetKind::ingress6:
      return Direction::ingress;
    default:
      return Direction::both;
  }
}

struct Piece {
  Addr128 lo = 0;  // first address
  Addr128 hi = 0;  // last address (inclusive)
  TimeMs expires_at = 0;
  std::optional<BlockRule> owner;  // absent for elements found in the kernel without our comment
  bool same_as(const Piece& o) const;
};

// Element comment "rule=<id> prefix=<cidr> dir=<egress|ingress|both> exp=<unix ms>" (< 128
// bytes, nft's comment limit) and its inverse.
std::string owner_comment(const BlockRule& owner);
std::optional<BlockRule> parse_owner_comment(std::string_view comment);

struct ElementOp {
  SetKind set = SetKind::egress4;
  bool add = false;  // false: delete
  Piece piece;
};

class IntervalPlanner {
 public:
  // Staging. Rules are keyed by prefix: upserting an existing prefix replaces its direction,
  // id and expiry. Every change marks its range for the next plan().
  void upsert(const BlockRule& rule);
  bool erase(const Prefix& prefix);
  // Marks the whole address space of both families for re-planning (reconciliation).
  void touch_all();

  // Starts a transaction: changes from here on can be undone with rollback().
  void begin();
  void rollback();

  // Element operations (all deletes first, then adds) that make the installed pieces of the
  // touched ranges match the rules live at `now`. Does not change the installed state.
  std::vector<ElementOp> plan(TimeMs now);
  // Records that `ops` are now in the kernel; ends the transaction.
  void commit(const std::vector<ElementOp>& ops);

  // Forgets rules and pieces that expired by `now` (the kernel drops them on its own).
  void prune(TimeMs now);
  // Replaces the installed state with what the kernel reports (restart, drift).
  void set_installed(SetKind set, std::map<Addr128, Piece> pieces);
  // Adopts the owners of installed pieces as rules (after a restart), live at `now`.
  void adopt_owners(TimeMs now);

  std::vector<BlockRule> rules(TimeMs now) const;
  const std::map<Addr128, Piece>& installed(SetKind set) const {
    return installed_[static_cast<int>(set)];
  }
  std::size_t rule_count() const { return rules_.size(); }

 private:
  struct Key {
    std::uint8_t family;
    Addr128 lo;
    std::uint8_t len;
    auto operator<=>(const Key&) const = default;
  };
  struct Range {
    Family family;
    Addr128 lo, hi;
  };
  static Key key_of(const Prefix& p);
  void record_undo(const Key& k);
  void mark(const Prefix& p);
  const BlockRule* outermost_containing(Family f, Addr128 addr) const;
  Range close_range(Range r) const;
  std::vector<Piece> desired(SetKind set, const Range& r, TimeMs now) const;

  std::map<Key, BlockRule> rules_;
  std::array<std::array<std::uint32_t, 129>, 2> len_count_{};  // [family v4=0/v6=1][len]
  std::array<std::map<Addr128, Piece>, kAllSets.size()> installed_;
  std::vector<Range> touched_;
  bool in_txn_ = false;
  std::vector<std::pair<Key, std::optional<BlockRule>>> undo_;
};

}  // namespace meshd::sensor::nft
