// Control-API requests as the daemon's control socket receives them (meshd/app/
// control_server.cpp): a byte stream split into length-prefixed frames by a FrameDecoder with
// the server's 64 KiB limit, each frame a ControlRequest; the address fields go through the
// handlers' parser (Prefix::parse), an operator decision through proto's cert and
// envelope checks.
// Properties: a request that parses re-serializes to bytes that parse to the same request; a
// frame with no request set is refused as the server does; an accepted address prints and
// re-parses to the same prefix; an operator decision opens only with a cert the CA signed.
#include <cstdint>
#include <string>

#include "meshd/common/prefix.hpp"
#include "proto/cert.hpp"
#include "proto/control.pb.h"
#include "proto/convert.hpp"
#include "proto/envelope.hpp"
#include "proto/frame.hpp"
#include "tests/fuzz/targets/fixed_identities.hpp"
#include "tests/fuzz/targets/fuzz_check.hpp"

namespace {

using namespace meshd;

void check_address(const std::string& text) {
  auto p = Prefix::parse(text);
  if (!p) {
    FUZZ_CHECK(!p.error().message.empty());
    return;
  }
  auto back = Prefix::parse(p->to_string());
  FUZZ_CHECK(back.has_value() && *back == *p);
  FUZZ_CHECK(back->to_string() == p->to_string());
}

void check_request(const std::vector<std::uint8_t>& frame) {
  v1::ControlRequest req;
  if (!req.ParseFromArray(frame.data(), static_cast<int>(frame.size())) ||
      req.request_case() == v1::ControlRequest::REQUEST_NOT_SET)
    return;  // the server answers bad_request and closes
  const std::string once = req.SerializeAsString();
  v1::ControlRequest again;
  FUZZ_CHECK(again.ParseFromString(once));
  FUZZ_CHECK(again.SerializeAsString() == once);
  FUZZ_CHECK(again.request_case() == req.request_case());
  switch (req.request_case()) {
    case v1::ControlRequest::kBlockAdd:
      check_address(req.block_add().cidr());
      break;
    case v1::ControlRequest::kBlockDel:
      check_address(req.block_del().cidr());
      break;
    case v1::ControlRequest::kExplain:
      check_address(req.explain().ip());
      break;
    case v1::ControlRequest::kOperatorDecision: {
      const auto& od = req.operator_decision();
      auto cert = proto::verify_cert(od.operator_cert(), fuzz::ca_key().public_key(), fuzz::kNow,
                                     v1::ROLE_OPERATOR);
      // What the CA signed is cert_body; ca_signature is over it. The SignedCert wrapper may
      // carry unknown fields (a merged repeat of the field, a newer sender): they are not
      // signed, and nothing reads them (corpus file crash-cert-wrapper-unknown-fields).
      if (cert) {
        FUZZ_CHECK(od.operator_cert().cert_body() == fuzz::operator_cert().cert_body());
        FUZZ_CHECK(od.operator_cert().ca_signature() == fuzz::operator_cert().ca_signature());
      }
      if (cert) {
        auto key = proto::cert_public_key(*cert);
        FUZZ_CHECK(key.has_value());
        if (auto d = proto::open_operator_decision(od.decision(), *key)) {
          // Verified: re-verifies from its own serialization.
          v1::Envelope copy;
          FUZZ_CHECK(copy.ParseFromString(od.decision().SerializeAsString()));
          FUZZ_CHECK(proto::open_operator_decision(copy, *key).has_value());
          if (auto p = proto::to_prefix(d->target())) check_address(p->to_string());
        }
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t chunk = data[0] % 64 + 1;
  proto::FrameDecoder decoder(64 * 1024);
  for (std::size_t pos = 1; pos < size; pos += chunk) {
    decoder.feed(proto::Bytes(data + pos, std::min(chunk, size - pos)));
    for (;;) {
      auto f = decoder.next();
      if (!f) return 0;  // frame_too_large: the server replies and closes
      if (!*f) break;
      check_request(**f);
    }
  }
  return 0;
}
