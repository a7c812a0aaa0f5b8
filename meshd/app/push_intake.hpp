// Pushed envelopes between their cheap checks and their expensive ones, one FIFO per signer,
// served round robin over signers.
//
// A received push costs little until the core opens it (rate limit, decode, event id, dedup:
// microseconds) and a lot after (Ed25519 verification, the trust engine, the store write, the
// relay to every other peer). Without this queue a node did the expensive part in arrival order,
// and arrival order is one FIFO per connection: when one signer pushes a burst (a peer flooding
// at its rate limit, whose valid claims every node verifies, stores and relays), each node's
// relays of that burst sit ahead of every other signer's events on every connection, and an
// honest claim waited for the whole burst at each hop (issue [H], tests/netns/README.md).
//
// The daemon now reads and dedups every frame at once and parks new pushes here by their signer
// (frames.hpp signer_of, unverified: a forger naming another signer only shares that signer's
// turn until its invalid signatures get it banned). It then opens them a few per io turn, one per
// signer in turn, so one signer's backlog delays another signer's event by at most one event per
// signer that has a backlog, not by the backlog.
//
// Bounded: at most per_signer_max events of one signer and total_max in all. An envelope that
// does not fit is not dropped, and it does not pass its own signer's waiting events: the caller
// opens that signer's oldest (take_oldest) and queues the new one behind the rest, or, when the
// signer has none waiting, opens the new one at once. Opening it first would reorder one
// origin's events, and the core refuses an event more than out_of_order_window ahead of what it
// holds: a bulk origin's burst past the bound was lost to every node (mesh_resources_bench held
// 5,322 of 20,000 claims).
// An envelope already waiting here (a copy from another peer) is not queued twice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "meshd/core/messages.hpp"

namespace meshd::app {

class PushIntake {
 public:
  struct Item {
    core::PeerId peer = 0;  // the core peer it came from
    core::Envelope envelope;
    core::EventId id{};
  };
  enum class Offer {
    queued,
    already_queued,  // a copy of a waiting envelope: drop this one
    full,            // the signer's or the total bound is reached: process it now
  };

  PushIntake(std::size_t per_signer_max, std::size_t total_max)
      : per_signer_max_(per_signer_max), total_max_(total_max) {}

  Offer offer(std::string_view signer, Item item);
  // The next envelope to open: the oldest of the signer whose turn it is.
  std::optional<Item> next();
  // The oldest waiting envelope of `signer`, out of turn (nullopt if it has none waiting).
  std::optional<Item> take_oldest(std::string_view signer);

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  std::size_t signers() const { return turns_.size(); }

 private:
  struct IdHash {
    std::size_t operator()(const core::EventId& id) const noexcept;
  };
  std::size_t per_signer_max_, total_max_;
  std::size_t size_ = 0;
  std::unordered_map<std::string, std::deque<Item>> queues_;  // signers with waiting items
  std::deque<std::string> turns_;  // those signers, in serving order (each once)
  std::unordered_set<core::EventId, IdHash> waiting_;
};

}  // namespace meshd::app
