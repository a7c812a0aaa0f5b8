// The store with an EnvelopeArchive (meshd/core/archive.hpp): envelope bytes are read back
// from the driver's storage, none stay in memory after the driver persisted them, and what
// the archive cannot return is left out and counted.
#include <gtest/gtest.h>

#include <map>
#include <utility>

#include "meshd/core/archive.hpp"
#include "meshd/core/node.hpp"
#include "tests/unit/core/fake_opener.hpp"

namespace meshd::core::test {
namespace {

// What a driver's durable storage holds: copies of the persisted bytes.
class MapArchive final : public EnvelopeArchive {
 public:
  void load(std::string_view origin, std::span<const std::uint64_t> seqs,
            std::vector<Envelope>& out) override {
    ++calls;
    for (std::uint64_t seq : seqs) {
      auto it = rows.find({std::string(origin), seq});
      out.push_back(it == rows.end() ? nullptr : make_envelope(*it->second));
    }
  }
  void persist(const Actions& a) {
    for (const Persist& p : a.persist) rows[{p.origin, p.seq}] = make_envelope(*p.envelope);
  }
  std::map<std::pair<std::string, std::uint64_t>, Envelope> rows;
  int calls = 0;
};

struct ArchivedNode {
  explicit ArchivedNode(const Registry& reg, Config cfg = Config{})
      : opener(reg),
        rng(1),
        engine(trust::Params{}, trust::LocalContext{trust::Origin{"me", "dme"}, {}, nullptr}, kT0),
        node(Node::create(cfg, engine, opener, rng, &archive).value()) {}
  // One message from a peer; the actions are persisted like the daemon does.
  Actions deliver(PeerId peer, Message m, TimeMs now) {
    if (!node.peer(peer, now) || !node.peer(peer, now)->connected) node.on_peer_up(peer, now);
    Actions a = node.on_message(peer, m, now);
    archive.persist(a);
    return a;
  }
  MapArchive archive;
  FakeOpener opener;
  SplitMix64 rng;
  trust::Engine engine;
  Node node;
};

std::vector<Envelope> claims(Registry& reg, std::uint64_t n) {
  std::vector<Envelope> v;
  for (std::uint64_t s = 1; s <= n; ++s)
    v.push_back(reg.make(Spec{.origin = "x",
                              .domain = "dx",
                              .seq = s,
                              .prefix = "198.51.100." + std::to_string(s) + "/32"}));
  return v;
}

const RangeResponse& response_of(const Actions& a) {
  EXPECT_EQ(a.sends.size(), 1u);
  return std::get<RangeResponse>(a.sends.at(0).message);
}

TEST(Archive, RangesAreServedFromTheArchiveAndNoEnvelopeStaysInMemory) {
  Registry reg;
  ArchivedNode t(reg);
  const auto evs = claims(reg, 10);
  for (const auto& e : evs) t.deliver(99, Push{e}, kT0);
  ASSERT_EQ(t.node.contiguous_seq("x"), 10u);
  ASSERT_EQ(t.archive.rows.size(), 10u);
  // After the driver's next call the node holds none of the envelopes it stored: only the
  // test's own references are left.
  t.node.tick(kT0 + 1);
  for (const auto& e : evs) EXPECT_EQ(e.use_count(), 1) << *e;

  const int before = t.archive.calls;
  Actions a = t.deliver(1, RangeRequest{"x", 3, 8}, kT0 + 2);
  const RangeResponse& rs = response_of(a);
  ASSERT_EQ(rs.envelopes.size(), 6u);
  for (std::size_t k = 0; k < 6; ++k) EXPECT_EQ(*rs.envelopes[k], *evs[k + 2]);
  EXPECT_FALSE(rs.truncated);
  EXPECT_EQ(t.archive.calls, before + 1);  // one batch for the whole range
  EXPECT_EQ(t.node.stats().envelopes_served, 6u);
  EXPECT_EQ(t.node.stats().archive_misses, 0u);
}

TEST(Archive, TruncationIsTheSameAsInMemory) {
  Registry reg;
  Config cfg;
  cfg.max_range_envelopes = 4;
  ArchivedNode t(reg, cfg);
  for (const auto& e : claims(reg, 10)) t.deliver(99, Push{e}, kT0);
  Actions a = t.deliver(1, RangeRequest{"x", 1, 10}, kT0 + 1);
  const RangeResponse& rs = response_of(a);
  EXPECT_EQ(rs.envelopes.size(), 4u);
  EXPECT_TRUE(rs.truncated);
}

TEST(Archive, WhatTheArchiveLostIsNotServedAndCounted) {
  Registry reg;
  ArchivedNode t(reg);
  const auto evs = claims(reg, 5);
  for (const auto& e : evs) t.deliver(99, Push{e}, kT0);
  t.archive.rows.erase({"x", 2});
  Actions a = t.deliver(1, RangeRequest{"x", 1, 5}, kT0 + 1);
  const RangeResponse& rs = response_of(a);
  ASSERT_EQ(rs.envelopes.size(), 4u);
  EXPECT_EQ(*rs.envelopes[1], *evs[2]);
  EXPECT_EQ(t.node.stats().archive_misses, 1u);
}

TEST(Archive, AnEnvelopeTheDriverDidNotPersistIsNotServedLater) {
  Registry reg;
  ArchivedNode t(reg);
  const auto evs = claims(reg, 2);
  t.node.on_peer_up(99, kT0);
  t.node.on_peer_up(1, kT0);
  // Accepted, but (unlike deliver()) not written to the archive yet.
  t.node.on_message(99, Push{evs[0]}, kT0);
  Actions a = t.node.on_message(1, RangeRequest{"x", 1, 1}, kT0);
  // The request is a new call: the node released its copy, and the archive has no row.
  EXPECT_TRUE(response_of(a).envelopes.empty());
  EXPECT_EQ(t.node.stats().archive_misses, 1u);
}

TEST(Archive, EquivocationIsDetectedAgainstTheArchivedBody) {
  Registry reg;
  ArchivedNode t(reg);
  const Envelope a = reg.make(Spec{.origin = "x", .domain = "dx", .seq = 1, .salt = "a"});
  const Envelope b = reg.make(Spec{.origin = "x", .domain = "dx", .seq = 1, .salt = "b"});
  t.deliver(1, Push{a}, kT0);
  t.node.tick(kT0 + 1);  // body a now lives only in the archive
  ASSERT_EQ(a.use_count(), 1);
  t.deliver(2, Push{b}, kT0 + 2);
  EXPECT_EQ(t.node.stats().equivocations, 1u);
  EXPECT_TRUE(t.engine.ledger().quarantined("x", kT0 + 2));
}

TEST(Archive, EvictionsEmitNoForget) {
  Registry reg;
  Config cfg;
  cfg.store_capacity = 3;
  ArchivedNode t(reg, cfg);
  std::size_t forgets = 0;
  for (const auto& e : claims(reg, 6)) forgets += t.deliver(99, Push{e}, kT0).forget.size();
  EXPECT_EQ(t.node.store_size(), 3u);
  EXPECT_EQ(t.node.stats().forgotten, 3u);
  EXPECT_EQ(forgets, 0u);
}

TEST(Archive, RestoreInSlicesEqualsOneRestore) {
  Registry reg;
  const auto xs = claims(reg, 6);
  std::vector<Envelope> all = xs;
  for (std::uint64_t s = 1; s <= 3; ++s)
    all.push_back(reg.make(Spec{.origin = "y", .domain = "dy", .seq = s}));
  ArchivedNode one(reg), sliced(reg);
  Actions a1, a2;
  one.node.restore(all, kT0, a1);
  for (std::size_t k = 0; k < all.size(); k += 4)
    sliced.node.restore(
        std::span<const Envelope>(all).subspan(k, std::min<std::size_t>(4, all.size() - k)), kT0,
        a2);
  EXPECT_EQ(one.node.store_size(), sliced.node.store_size());
  EXPECT_EQ(sliced.node.contiguous_seq("x"), 6u);
  EXPECT_EQ(sliced.node.contiguous_seq("y"), 3u);
  EXPECT_EQ(one.node.enforced().size(), sliced.node.enforced().size());
  EXPECT_EQ(a1.blocks.size(), a2.blocks.size());
}

}  // namespace
}  // namespace meshd::core::test
