// The daemon's intake of pushed envelopes (meshd/app/push_intake.hpp): one FIFO per signer,
// served round robin, bounded; and signer_of, which names the signer without decoding.
#include "meshd/app/push_intake.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "meshd/app/frames.hpp"
#include "proto/crypto.hpp"
#include "proto/envelope.hpp"

namespace meshd::app {
namespace {

core::EventId id_of(std::uint32_t n) {
  core::EventId id{};
  for (int k = 0; k < 4; ++k)
    id[static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(n >> (8 * k));
  return id;
}

PushIntake::Item item(std::uint32_t n, core::PeerId peer = 1) {
  return {peer, core::make_envelope("env-" + std::to_string(n)), id_of(n)};
}

// The cause of issue [H]'s slow honest claims during a flood: one signer's burst ahead of
// another signer's event. Served in arrival order, the honest event would come out last
// (after 1,000 flood events); here it comes out second.
TEST(PushIntake, AnotherSignersEventOvertakesAQueuedFloodBacklog) {
  PushIntake q(2048, 8192);
  for (std::uint32_t n = 0; n < 1000; ++n)
    ASSERT_EQ(q.offer("mallory-flood", item(n, 7)), PushIntake::Offer::queued);
  ASSERT_EQ(q.offer("node2", item(5000, 2)), PushIntake::Offer::queued);
  EXPECT_EQ(q.size(), 1001u);
  EXPECT_EQ(q.signers(), 2u);
  std::size_t position = 0;
  for (;;) {
    auto next = q.next();
    ASSERT_TRUE(next);
    ++position;
    if (next->id == id_of(5000)) {
      EXPECT_EQ(next->peer, 2u);
      EXPECT_EQ(*next->envelope, "env-5000");
      break;
    }
  }
  EXPECT_LE(position, 2u);
  // The flood's own events still come out, all of them, in their order.
  for (std::uint32_t n = 1; n < 1000; ++n) {
    auto next = q.next();
    ASSERT_TRUE(next);
    EXPECT_EQ(next->id, id_of(n));
  }
  EXPECT_FALSE(q.next());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.signers(), 0u);
}

TEST(PushIntake, SignersWithBacklogsTakeTurns) {
  PushIntake q(100, 1000);
  for (std::uint32_t n = 0; n < 3; ++n) ASSERT_EQ(q.offer("a", item(n)), PushIntake::Offer::queued);
  for (std::uint32_t n = 10; n < 13; ++n)
    ASSERT_EQ(q.offer("b", item(n)), PushIntake::Offer::queued);
  ASSERT_EQ(q.offer("c", item(20)), PushIntake::Offer::queued);
  std::vector<core::EventId> order;
  while (auto next = q.next()) order.push_back(next->id);
  const std::vector<core::EventId> want{id_of(0),  id_of(10), id_of(20), id_of(1),
                                        id_of(11), id_of(2),  id_of(12)};
  EXPECT_EQ(order, want);
}

TEST(PushIntake, ACopyOfAWaitingEnvelopeIsNotQueuedTwice) {
  PushIntake q(100, 1000);
  ASSERT_EQ(q.offer("a", item(1, 1)), PushIntake::Offer::queued);
  EXPECT_EQ(q.offer("a", item(1, 2)), PushIntake::Offer::already_queued);
  EXPECT_EQ(q.size(), 1u);
  ASSERT_TRUE(q.next());
  // Once it left the intake (the core has it now), a copy is the core's to judge.
  EXPECT_EQ(q.offer("a", item(1, 2)), PushIntake::Offer::queued);
}

TEST(PushIntake, BoundedPerSignerAndInTotal) {
  PushIntake q(3, 5);
  for (std::uint32_t n = 0; n < 3; ++n) ASSERT_EQ(q.offer("a", item(n)), PushIntake::Offer::queued);
  EXPECT_EQ(q.offer("a", item(3)), PushIntake::Offer::full);  // a's bound
  ASSERT_EQ(q.offer("b", item(10)), PushIntake::Offer::queued);
  ASSERT_EQ(q.offer("c", item(20)), PushIntake::Offer::queued);
  EXPECT_EQ(q.offer("d", item(30)), PushIntake::Offer::full);  // the total bound
  EXPECT_EQ(q.size(), 5u);
  ASSERT_TRUE(q.next());
  EXPECT_EQ(q.offer("d", item(30)), PushIntake::Offer::queued);
}

// What the daemon does when a signer's queue is full: its oldest is opened out of turn and the
// new one queued behind the rest, so one origin's events are opened in arrival order however
// long its burst (the core refuses events too far ahead of the ones it holds).
TEST(PushIntake, TakeOldestKeepsOneSignersOrderPastTheBound) {
  PushIntake q(3, 100);
  for (std::uint32_t n = 0; n < 3; ++n) ASSERT_EQ(q.offer("a", item(n)), PushIntake::Offer::queued);
  ASSERT_EQ(q.offer("b", item(50)), PushIntake::Offer::queued);
  std::vector<std::uint32_t> opened;
  auto number = [](const PushIntake::Item& i) {
    return static_cast<std::uint32_t>(i.id[0]) | static_cast<std::uint32_t>(i.id[1]) << 8;
  };
  for (std::uint32_t n = 3; n < 10; ++n) {
    ASSERT_EQ(q.offer("a", item(n)), PushIntake::Offer::full);
    auto oldest = q.take_oldest("a");
    ASSERT_TRUE(oldest);
    opened.push_back(number(*oldest));
    ASSERT_EQ(q.offer("a", item(n)), PushIntake::Offer::queued);
  }
  while (auto next = q.next()) opened.push_back(number(*next));
  std::vector<std::uint32_t> of_a;
  for (auto n : opened)
    if (n != 50) of_a.push_back(n);
  EXPECT_EQ(of_a, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(opened.size(), 11u);
  EXPECT_FALSE(q.take_oldest("a"));
  EXPECT_FALSE(q.take_oldest("nobody"));
  // The last of a signer's waiting events taken out of turn also ends its turn.
  ASSERT_EQ(q.offer("c", item(60)), PushIntake::Offer::queued);
  ASSERT_TRUE(q.take_oldest("c"));
  EXPECT_EQ(q.signers(), 0u);
  EXPECT_TRUE(q.empty());
}

TEST(SignerOf, NamesTheSignerOfEveryBodyKindWithoutDecoding) {
  proto::ensure_sodium();
  const auto key = proto::SecretKey::generate();
  v1::Claim c;
  c.set_origin("node-7");
  c.set_seq(3);
  c.set_confidence(0.5);
  EXPECT_EQ(signer_of(proto::sign_claim(c, key).SerializeAsString()), "node-7");
  v1::Retraction r;
  r.set_origin("node-8");
  r.set_seq(4);
  EXPECT_EQ(signer_of(proto::sign_retraction(r, key).SerializeAsString()), "node-8");
  v1::OperatorDecision d;
  d.set_operator_id("ops-1");
  d.set_seq(1);
  EXPECT_EQ(signer_of(proto::sign_operator_decision(d, key).SerializeAsString()), "ops-1");
  v1::MisbehaviourProof p;
  p.set_reporter("node-9");
  p.set_accused("node-3");
  EXPECT_EQ(signer_of(proto::sign_misbehaviour_proof(p, key).SerializeAsString()), "node-9");
  // Garbage, an empty body, a truncated envelope: no signer (the core then judges the bytes).
  EXPECT_EQ(signer_of("\xff\xff\xff"), "");
  EXPECT_EQ(signer_of(std::string("\x12\x00", 2)), "");
  const std::string whole = proto::sign_claim(c, key).SerializeAsString();
  EXPECT_EQ(signer_of(whole.substr(0, 6)), "");
}

}  // namespace
}  // namespace meshd::app
