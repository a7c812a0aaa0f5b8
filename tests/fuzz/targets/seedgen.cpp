// Writes the binary seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/ (run by
// hand after a wire-format change: build/fuzz/fuzz_seedgen tests/fuzz/corpus). Signed seeds
// use fixed_identities.hpp, so they verify in the targets.
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "proto/control.pb.h"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "proto/frame.hpp"
#include "tests/fuzz/targets/fixed_identities.hpp"

namespace {

using namespace meshd;
namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}
std::string str(const std::vector<std::uint8_t>& v) {
  return std::string(v.begin(), v.end());
}

v1::Claim claim(std::uint64_t seq, const char* cidr) {
  v1::Claim c;
  c.set_origin("node-a");
  c.set_seq(seq);
  *c.mutable_target() = proto::to_cidr(*Prefix::parse(cidr));
  c.set_direction(v1::DIRECTION_BOTH);
  c.set_detector("feed:drop");
  c.set_severity(v1::SEVERITY_HIGH);
  c.set_confidence(0.8);
  c.set_issued_at_ms(fuzz::kNow - 1000);
  c.set_ttl_ms(3'600'000);
  return c;
}

v1::Envelope with_cert(v1::Envelope e, const v1::SignedCert& cert) {
  *e.mutable_signer_cert() = cert;
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path out = argc > 1 ? argv[1] : "tests/fuzz/corpus";
  const auto& ka = fuzz::node_a_key();

  const v1::Envelope c1 =
      with_cert(proto::sign_claim(claim(1, "198.51.100.0/24"), ka), fuzz::node_a_cert());
  const v1::Envelope c2 =
      with_cert(proto::sign_claim(claim(2, "2001:db8::/48"), ka), fuzz::node_a_cert());
  v1::Retraction r;
  r.set_origin("node-a");
  r.set_seq(3);
  r.set_claim_seq(1);
  r.set_issued_at_ms(fuzz::kNow - 500);
  const v1::Envelope re = with_cert(proto::sign_retraction(r, ka), fuzz::node_a_cert());
  v1::OperatorDecision d;
  d.set_operator_id("alice");
  d.set_seq(1);
  *d.mutable_target() = proto::to_cidr(*Prefix::parse("203.0.113.0/24"));
  d.set_issued_at_ms(fuzz::kNow - 100);
  d.set_ttl_ms(600'000);
  d.set_reason("seed");
  d.set_action(v1::OPERATOR_ACTION_BLOCK);
  d.set_direction(v1::DIRECTION_BOTH);
  const v1::Envelope de =
      with_cert(proto::sign_operator_decision(d, fuzz::operator_key()), fuzz::operator_cert());
  v1::MisbehaviourProof p;
  p.set_reporter("node-a");
  p.set_seq(4);
  p.set_accused("node-a");
  p.set_kind(v1::MISBEHAVIOUR_KIND_EQUIVOCATION);
  p.set_issued_at_ms(fuzz::kNow - 50);
  *p.add_evidence() = c1;
  *p.add_evidence() = c2;
  const v1::Envelope pe = with_cert(proto::sign_misbehaviour_proof(p, ka), fuzz::node_a_cert());

  // fuzz_envelope: mode byte 0 + envelope; odd mode + body (signed by the target).
  int i = 0;
  for (const auto* e : {&c1, &c2, &re, &de, &pe})
    write(out / "fuzz_envelope", "envelope-" + std::to_string(++i),
          std::string(1, '\0') + e->SerializeAsString());
  write(out / "fuzz_envelope", "body-claim",
        std::string(1, '\x01') + claim(5, "192.0.2.7").SerializeAsString());
  write(out / "fuzz_envelope", "body-retraction", std::string(1, '\x03') + r.SerializeAsString());
  write(out / "fuzz_envelope", "body-decision", std::string(1, '\x05') + d.SerializeAsString());
  write(out / "fuzz_envelope", "body-proof", std::string(1, '\x07') + p.SerializeAsString());

  // fuzz_frame: 2 split bytes + a stream of frames.
  v1::Frame f1;
  *f1.mutable_envelope() = c1;
  v1::Frame f2;
  auto* rr = f2.mutable_range_response();
  *rr->add_envelopes() = c2;
  *rr->add_envelopes() = re;
  v1::Frame f3;
  auto* vv = f3.mutable_version_vector()->add_entries();
  vv->set_origin("node-a");
  vv->set_max_contiguous_seq(4);
  v1::Frame f4;
  *f4.mutable_hello()->mutable_cert() = fuzz::node_a_cert();
  f4.mutable_hello()->set_ephemeral_pk(std::string(32, 'k'));
  f4.mutable_hello()->set_protocol_version(1);
  std::string stream;
  for (const auto* f : {&f1, &f2, &f3, &f4}) stream += str(proto::encode_frame(*f));
  write(out / "fuzz_frame", "stream", "\x03\x07" + stream);
  write(out / "fuzz_frame", "one", "\x00\x00" + str(proto::encode_frame(f1)));
  write(out / "fuzz_frame", "oversize", std::string("\x01\x01\x00\x10\x00\x00", 6) + "x");

  // fuzz_control: chunk byte + framed ControlRequests, as meshctl sends them.
  std::string ctl;
  auto add = [&](const v1::ControlRequest& q) { ctl += str(proto::encode_frame(q)); };
  v1::ControlRequest q;
  q.mutable_status();
  add(q);
  q.Clear();
  q.mutable_block_add()->set_cidr("203.0.113.0/24");
  q.mutable_block_add()->set_reason("seed");
  add(q);
  q.Clear();
  q.mutable_block_del()->set_cidr("2001:db8::1");
  add(q);
  q.Clear();
  q.mutable_explain()->set_ip("198.51.100.7");
  add(q);
  q.Clear();
  q.mutable_events()->set_follow(false);
  add(q);
  q.Clear();
  *q.mutable_operator_decision()->mutable_decision() = de;
  *q.mutable_operator_decision()->mutable_operator_cert() = fuzz::operator_cert();
  add(q);
  write(out / "fuzz_control", "requests", "\x05" + ctl);

  // fuzz_handshake: control bytes (see the target): all messages intact; a flipped Hello byte;
  // a replaced Hello; a revoked responder; an expired clock.
  write(out / "fuzz_handshake", "intact", std::string(5, '\0'));
  write(out / "fuzz_handshake", "flip-hello", std::string("\x00\x02\x00\x40\x08\x00\x00\x00", 8));
  write(out / "fuzz_handshake", "replace-hello",
        std::string("\x00\x01\x10\x00", 4) + str(proto::encode_frame(f4)).substr(4) +
            std::string(3, '\0'));
  write(out / "fuzz_handshake", "revoked", std::string("\x01\x00\x00\x00\x00", 5));
  write(out / "fuzz_handshake", "expired", std::string("\x06\x00\x00\x00\x00", 5));
  write(out / "fuzz_handshake", "truncate-auth", std::string("\x00\x00\x00\x03\x00\x20\x00", 7));

  // fuzz_peer_exchange: Frame payloads holding a PeerExchange (after a handshake, a redirect,
  // IPv6 and v4-mapped, entries that must be dropped, too many, an unknown version, a listen
  // port out of range, an empty one).
  auto pex = [](std::uint32_t version, bool redirect, std::uint32_t listen_port,
                const std::vector<std::tuple<std::string, std::uint32_t, std::string>>& peers) {
    v1::Frame f;
    auto* m = f.mutable_peer_exchange();
    m->set_version(version);
    m->set_redirect(redirect);
    m->set_listen_port(listen_port);
    for (const auto& [ip, port, node] : peers) {
      auto* a = m->add_peers();
      a->set_ip(ip);
      a->set_port(port);
      a->set_node_id(node);
    }
    return f.SerializeAsString();
  };
  auto v4 = [](int a, int b, int c, int d) {
    return std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                       static_cast<char>(d)};
  };
  const fs::path px = out / "fuzz_peer_exchange";
  write(px, "after-handshake",
        pex(1, false, 7946,
            {{v4(10, 213, 0, 12), 7946, "node2"}, {v4(10, 213, 0, 13), 7946, "node3"}}));
  std::vector<std::tuple<std::string, std::uint32_t, std::string>> five, forty;
  for (int i = 1; i <= 5; ++i) five.emplace_back(v4(10, 0, 0, i), 7946, "n" + std::to_string(i));
  for (int i = 0; i < 40; ++i) forty.emplace_back(v4(10, 1, i / 250, i % 250 + 1), 7946, "");
  write(px, "redirect", pex(1, true, 7946, five));
  write(px, "ipv6-and-mapped",
        pex(1, false, 0,
            {{std::string(15, '\0') + "\x01", 7946, "v6"},
             {std::string(10, '\0') + "\xff\xff" + v4(10, 0, 0, 9), 7946, "mapped"}}));
  write(px, "bad-entries",
        pex(1, false, 0,
            {{"\x01\x02\x03", 7946, ""},
             {v4(0, 0, 0, 0), 7946, ""},
             {v4(224, 0, 0, 1), 7946, ""},
             {v4(10, 0, 0, 1), 0, ""},
             {v4(10, 0, 0, 1), 70000, ""},
             {v4(10, 0, 0, 1), 7946, "dup"},
             {v4(10, 0, 0, 1), 7946, "dup"}}));
  write(px, "too-many", pex(1, false, 0, forty));
  write(px, "version-2", pex(2, false, 0, {{v4(10, 0, 0, 1), 7946, ""}}));
  write(px, "listen-port-overflow", pex(1, false, 70000, {}));
  write(px, "empty", pex(1, false, 0, {}));
  return 0;
}
