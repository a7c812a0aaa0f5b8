// Misbehaviour proofs: detection, publication, independent verification, quarantine.
#include <gtest/gtest.h>

#include "meshd/core/node.hpp"
#include "tests/unit/core/fake_opener.hpp"

namespace meshd::core::test {
namespace {

bool lifted(const Actions& a, const std::string& prefix) {
  for (const auto& b : a.blocks)
    if (b.kind == trust::BlockChange::Kind::lift && b.prefix == *Prefix::parse(prefix)) return true;
  return false;
}
bool enforced(const Actions& a, const std::string& prefix) {
  for (const auto& b : a.blocks)
    if (b.kind == trust::BlockChange::Kind::enforce && b.prefix == *Prefix::parse(prefix))
      return true;
  return false;
}

// Ticks at the node's deadlines until a ProofRequest comes out (or give up).
std::optional<ProofRequest> await_proof(TestNode& t, TimeMs from, TimeMs limit) {
  TimeMs now = from;
  while (now <= limit) {
    now = std::max(now, t.node.next_deadline());
    if (now > limit) break;
    Actions a = t.node.tick(now);
    if (!a.proofs.empty()) return a.proofs[0];
  }
  return std::nullopt;
}

struct Proofs : ::testing::Test {
  Registry reg;
  const std::string p1 = "203.0.113.7/32";
  Envelope body_a = reg.make(Spec{.origin = "x", .domain = "dx", .seq = 1, .prefix = p1});
  Envelope body_b = reg.make(
      Spec{.origin = "x", .domain = "dx", .seq = 1, .prefix = "203.0.113.8/32", .salt = "b"});
};

TEST_F(Proofs, EquivocationIsProvenVerifiedElsewhereAndLiftsBlocks) {
  TestNode reporter(reg, "r", "dr");
  TestNode verifier(reg, "v", "dv");
  for (PeerId p : {1, 2, 3}) {
    reporter.node.on_peer_up(p, kT0);
    verifier.node.on_peer_up(p, kT0);
  }
  // The verifier saw only body A and enforces it.
  ASSERT_TRUE(enforced(verifier.node.on_message(1, Push{body_a}, kT0), p1));

  // The reporter sees both bodies: equivocation, quarantined at once, second body not relayed.
  ASSERT_TRUE(enforced(reporter.node.on_message(1, Push{body_a}, kT0), p1));
  Actions eq = reporter.node.on_message(2, Push{body_b}, kT0 + 5);
  EXPECT_EQ(push_count(eq), 0u);
  EXPECT_TRUE(lifted(eq, p1));
  EXPECT_EQ(reporter.node.stats().equivocations, 1u);
  EXPECT_TRUE(reporter.engine.ledger().quarantined("x", kT0 + 5));
  // Later events of x are dropped, not relayed.
  Actions later = reporter.node.on_message(
      1, Push{reg.make(Spec{.origin = "x", .domain = "dx", .seq = 2})}, kT0 + 6);
  EXPECT_EQ(push_count(later), 0u);
  EXPECT_EQ(reporter.node.stats().from_quarantined, 1u);

  // After the jitter the core asks the driver to publish a proof with both envelopes.
  auto req = await_proof(reporter, kT0 + 6, kT0 + 6 + reporter.node.config().proof_jitter_ms + 1);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->accused, "x");
  EXPECT_EQ(req->kind, MisbehaviourKind::equivocation);
  ASSERT_EQ(req->evidence.size(), 2u);
  EXPECT_EQ(reporter.node.stats().proofs_requested, 1u);

  // The driver signs it and hands it back; the core gossips it.
  const Envelope proof = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "r",
                                       .domain = "dr",
                                       .seq = 1,
                                       .accused = req->accused,
                                       .proof_kind = req->kind,
                                       .evidence = req->evidence});
  Actions pub;
  ASSERT_TRUE(reporter.node.on_local_event(proof, kT0 + 400, pub));
  EXPECT_EQ(push_count(pub), 3u);
  EXPECT_EQ(reporter.node.stats().quarantines, 1u);  // not quarantined twice

  // The verifier checks it from the evidence alone, quarantines x and lifts its block.
  Actions v = verifier.node.on_message(2, Push{proof}, kT0 + 420);
  EXPECT_EQ(verifier.node.stats().proofs_valid, 1u);
  EXPECT_TRUE(verifier.engine.ledger().quarantined("x", kT0 + 420));
  EXPECT_TRUE(lifted(v, p1));
  EXPECT_EQ(push_count(v), 2u);  // relayed to the other peers
  EXPECT_FALSE(verifier.engine.enforced(*Prefix::parse(p1)).has_value());

  // Its own later detection of the same equivocation publishes nothing: a proof is known.
  Actions again = verifier.node.on_message(3, Push{body_b}, kT0 + 430);
  EXPECT_EQ(push_count(again), 0u);
  EXPECT_FALSE(await_proof(verifier, kT0 + 430, kT0 + 2000).has_value());
}

TEST_F(Proofs, OwnProofIsSuppressedWhenAnotherArrivesFirst) {
  TestNode t(reg, "r", "dr");
  t.node.on_peer_up(1, kT0);
  t.node.on_message(1, Push{body_a}, kT0);
  t.node.on_message(1, Push{body_b}, kT0);
  const Envelope other = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "q",
                                       .domain = "dq",
                                       .seq = 1,
                                       .accused = "x",
                                       .evidence = {body_b, body_a}});
  t.node.on_message(1, Push{other}, kT0 + 1);
  EXPECT_FALSE(await_proof(t, kT0 + 1, kT0 + 5000).has_value());
  EXPECT_EQ(t.node.stats().proofs_suppressed, 1u);
}

TEST_F(Proofs, InvalidProofsAreDroppedAndChangeNothing) {
  TestNode v(reg, "v", "dv");
  for (PeerId p : {1, 2}) v.node.on_peer_up(p, kT0);
  ASSERT_TRUE(enforced(v.node.on_message(1, Push{body_a}, kT0), p1));
  const Envelope forged_sig = reg.make(Spec{.origin = "x",
                                            .domain = "dx",
                                            .seq = 1,
                                            .prefix = "1.2.3.4/32",
                                            .salt = "f",
                                            .signature_ok = false});
  const Envelope other_origin =
      reg.make(Spec{.origin = "y", .domain = "dy", .seq = 1, .salt = "y"});
  std::uint64_t seq = 1;
  for (const std::vector<Envelope>& ev : std::vector<std::vector<Envelope>>{
           {body_a},                // one body only
           {body_a, body_a},        // same body twice
           {body_a, forged_sig},    // the accused did not sign the second one
           {body_a, other_origin},  // not the accused's envelope
           {}}) {
    const Envelope proof = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                         .origin = "r",
                                         .domain = "dr",
                                         .seq = seq++,
                                         .accused = "x",
                                         .evidence = ev});
    Actions a = v.node.on_message(2, Push{proof}, kT0 + 10);
    EXPECT_EQ(push_count(a), 0u);
    EXPECT_TRUE(a.blocks.empty());
  }
  EXPECT_EQ(v.node.stats().proofs_invalid, 5u);
  EXPECT_FALSE(v.engine.ledger().quarantined("x", kT0 + 10));
  EXPECT_TRUE(v.engine.enforced(*Prefix::parse(p1)).has_value());
  EXPECT_DOUBLE_EQ(v.node.peer(2, kT0 + 10)->penalty, 0);  // not the forwarder's fault
}

TEST_F(Proofs, ProtectedTargetDetectedByTheEngineIsProvenToOthers) {
  const std::vector<trust::ProtectedPrefix> fleet{
      {*Prefix::parse("10.96.0.0/12"), "kubernetes api", true}};
  TestNode a(reg, "a", "da", Config{}, 1, trust::Params{}, fleet);
  TestNode b(reg, "b", "db", Config{}, 2, trust::Params{}, fleet);
  a.node.on_peer_up(1, kT0);
  b.node.on_peer_up(1, kT0);
  const Envelope bad =
      reg.make(Spec{.origin = "x", .domain = "dx", .seq = 1, .prefix = "10.96.0.1/32"});
  Actions d = a.node.on_message(1, Push{bad}, kT0);
  EXPECT_EQ(push_count(d), 0u);
  EXPECT_TRUE(a.engine.ledger().quarantined("x", kT0));
  auto req = await_proof(a, kT0, kT0 + 1000);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->kind, MisbehaviourKind::protected_target);
  ASSERT_EQ(req->evidence.size(), 1u);
  EXPECT_EQ(req->evidence[0], bad);

  const Envelope proof = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "a",
                                       .domain = "da",
                                       .seq = 1,
                                       .accused = "x",
                                       .proof_kind = req->kind,
                                       .evidence = req->evidence});
  b.node.on_message(1, Push{proof}, kT0 + 100);
  EXPECT_EQ(b.node.stats().proofs_valid, 1u);
  EXPECT_TRUE(b.engine.ledger().quarantined("x", kT0 + 100));

  // The same accusation relabelled as an overrun does not verify.
  TestNode c(reg, "c", "dc", Config{}, 3, trust::Params{}, fleet);
  c.node.on_peer_up(1, kT0);
  c.node.on_message(1,
                    Push{reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "a",
                                       .domain = "da",
                                       .seq = 2,
                                       .accused = "x",
                                       .proof_kind = MisbehaviourKind::budget_overrun,
                                       .evidence = req->evidence})},
                    kT0 + 100);
  EXPECT_EQ(c.node.stats().proofs_invalid, 1u);
  EXPECT_FALSE(c.engine.ledger().quarantined("x", kT0 + 100));
}

TEST_F(Proofs, ProofSpreadsThroughAMeshAndEveryNodeQuarantines) {
  Network net(reg);
  for (int i = 0; i < 6; ++i)
    net.add("n" + std::to_string(i), "d" + std::to_string(i % 3), Config{},
            static_cast<std::uint64_t>(i + 1));
  for (std::size_t i = 0; i < 6; ++i) net.link(i, (i + 1) % 6, kT0);  // a ring
  net.run(kT0);
  // x pushes body A into node 0 and body B into node 3.
  inject(net.at(0), 90, Push{body_a}, kT0 + 1);
  inject(net.at(3), 91, Push{body_b}, kT0 + 1);
  net.at(0).node.on_peer_down(90, kT0 + 1);
  net.at(3).node.on_peer_down(91, kT0 + 1);
  // inject() relayed nothing: anti-entropy pulls the bodies, pushes carry them on, and they
  // meet somewhere in the ring.
  TimeMs now = kT0 + 2;
  // Let both bodies spread (they were only injected): a tick sends vectors, pulls follow.
  for (int i = 0; i < 200; ++i) {
    TimeMs next = kNoDeadline;
    for (std::size_t k = 0; k < net.size(); ++k)
      next = std::min(next, net.at(k).node.next_deadline());
    now = std::max(now, next);
    net.tick_all(now);
    // Publish every requested proof as its node's next event.
    auto requested = std::move(net.proofs);
    net.proofs.clear();
    for (auto& [idx, list] : requested) {
      for (auto& pr : list) {
        const Envelope env = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                           .origin = net.at(idx).name,
                                           .domain = "d",
                                           .seq = 1,
                                           .accused = pr.accused,
                                           .proof_kind = pr.kind,
                                           .evidence = pr.evidence});
        net.publish(idx, env, now);
      }
    }
    net.run(now);
    bool all = true;
    for (std::size_t k = 0; k < net.size(); ++k)
      all &= net.at(k).engine.ledger().quarantined("x", now);
    if (all) break;
  }
  for (std::size_t k = 0; k < net.size(); ++k) {
    EXPECT_TRUE(net.at(k).engine.ledger().quarantined("x", now)) << k;
    EXPECT_FALSE(net.at(k).engine.enforced(*Prefix::parse(p1)).has_value()) << k;
  }
  EXPECT_LE(now, kT0 + 10'000);
}

}  // namespace
}  // namespace meshd::core::test

namespace meshd::core::test {
namespace {

TEST(OverrunProof, GrossBudgetOverrunIsProvenWithTheClaimsInTheWindow) {
  Registry reg;
  trust::Params params;
  params.overrun_max_claims = 5;
  Config cfg;
  cfg.origin_burst = 100;
  TestNode a(reg, "a", "da", cfg, 1, params);
  TestNode b(reg, "b", "db", cfg, 2, params);
  a.node.on_peer_up(1, kT0);
  b.node.on_peer_up(1, kT0);
  std::vector<Envelope> flood;
  for (std::uint64_t s = 1; s <= 6; ++s) {
    flood.push_back(reg.make(Spec{.origin = "x",
                                  .domain = "dx",
                                  .seq = s,
                                  .issued_at = kT0 + static_cast<TimeMs>(s),
                                  .prefix = "198.51.100." + std::to_string(s) + "/32"}));
  }
  for (const auto& e : flood) a.node.on_message(1, Push{e}, kT0 + 10);
  EXPECT_TRUE(a.engine.ledger().quarantined("x", kT0 + 10));
  auto req = await_proof(a, kT0 + 10, kT0 + 2000);
  ASSERT_TRUE(req.has_value());
  EXPECT_EQ(req->kind, MisbehaviourKind::budget_overrun);
  EXPECT_EQ(req->evidence.size(), 6u);

  const Envelope proof = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "a",
                                       .domain = "da",
                                       .seq = 1,
                                       .accused = "x",
                                       .proof_kind = req->kind,
                                       .evidence = req->evidence});
  b.node.on_message(1, Push{proof}, kT0 + 100);
  EXPECT_EQ(b.node.stats().proofs_valid, 1u);
  EXPECT_TRUE(b.engine.ledger().quarantined("x", kT0 + 100));
  // Five claims are within the budget: not an overrun.
  std::vector<Envelope> five(req->evidence.begin(), req->evidence.begin() + 5);
  TestNode c(reg, "c", "dc", cfg, 3, params);
  c.node.on_peer_up(1, kT0);
  c.node.on_message(1,
                    Push{reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "a",
                                       .domain = "da",
                                       .seq = 2,
                                       .accused = "x",
                                       .proof_kind = req->kind,
                                       .evidence = five})},
                    kT0 + 100);
  EXPECT_EQ(c.node.stats().proofs_invalid, 1u);
  EXPECT_FALSE(c.engine.ledger().quarantined("x", kT0 + 100));
}

TEST(RestoreProof, QuarantineSurvivesARestartThroughThePersistedProof) {
  Registry reg;
  const Envelope a1 = reg.make(Spec{.origin = "x", .domain = "dx", .seq = 1});
  const Envelope a2 =
      reg.make(Spec{.origin = "x", .domain = "dx", .seq = 1, .prefix = "1.2.3.4/32", .salt = "2"});
  const Envelope proof = reg.make(Spec{.kind = EventKind::misbehaviour_proof,
                                       .origin = "q",
                                       .domain = "dq",
                                       .seq = 1,
                                       .accused = "x",
                                       .evidence = {a1, a2}});
  TestNode t(reg, "me", "dm");
  Actions a;
  t.node.restore(std::vector<Envelope>{proof, a1}, kT0, a);
  EXPECT_TRUE(t.engine.ledger().quarantined("x", kT0));
  EXPECT_EQ(t.node.stats().proofs_valid, 1u);
  EXPECT_TRUE(a.sends.empty());
}

}  // namespace
}  // namespace meshd::core::test
