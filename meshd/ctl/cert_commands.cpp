// meshctl cert show: print a certificate, check its validity window and, with --ca, its
// signature. Exits 1 (one stderr line) if the cert is expired, not yet valid or not
// signed by the given CA, after printing it, so the command doubles as a check.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "meshd/ctl/ctl.hpp"
#include "proto/cert.hpp"
#include "proto/keys.hpp"

namespace meshd::ctl {

namespace {

struct CertShowOptions {
  std::string file;
  std::string ca;
  bool json = false;
};

Result<void> cert_show(const CertShowOptions& o) {
  auto sc = proto::load_cert_file(o.file);
  if (!sc) return std::unexpected(sc.error());
  auto cert = proto::decode_cert(*sc);
  if (!cert) return fail(cert.error().code, o.file + ": " + cert.error().message);
  const TimeMs now = wall_now_ms();

  std::optional<proto::PublicKey> ca_pub;
  Result<v1::NodeCert> verdict = *cert;
  if (!o.ca.empty()) {
    auto pub = proto::load_public_key(std::filesystem::path(o.ca) / "ca.pub");
    if (!pub) return std::unexpected(pub.error());
    ca_pub = *pub;
    verdict = proto::verify_cert(*sc, *ca_pub, now);
  }
  const bool expired = now > cert->not_after_ms();
  const bool not_yet_valid = now < cert->not_before_ms();
  const bool bad_signature = !verdict && verdict.error().code == "cert_bad_signature";
  auto key = proto::PublicKey::from_bytes(proto::as_bytes(cert->public_key()));
  std::string fingerprint = key ? key->fingerprint() : "(invalid key)";

  if (o.json) {
    nlohmann::json j = {
        {"file", o.file},
        {"node_id", cert->node_id()},
        {"failure_domain", cert->failure_domain()},
        {"role", proto::role_name(cert->role())},
        {"public_key", proto::base64_encode(proto::as_bytes(cert->public_key()))},
        {"fingerprint", fingerprint},
        {"not_before_ms", cert->not_before_ms()},
        {"not_after_ms", cert->not_after_ms()},
        {"not_before", format_time(cert->not_before_ms())},
        {"not_after", format_time(cert->not_after_ms())},
        {"serial", cert->serial()},
        {"expired", expired},
        {"not_yet_valid", not_yet_valid},
    };
    if (ca_pub) {
      j["ca_fingerprint"] = ca_pub->fingerprint();
      j["signature_valid"] = !bad_signature;
    } else {
      j["signature_valid"] = nullptr;  // not checked
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::string status = expired ? "EXPIRED" : not_yet_valid ? "NOT YET VALID" : "valid";
    std::string sig = !ca_pub         ? "not checked (pass --ca DIR)"
                      : bad_signature ? "INVALID for CA " + ca_pub->fingerprint()
                                      : "signed by CA " + ca_pub->fingerprint();
    std::printf(
        "certificate  %s\n"
        "node id      %s\n"
        "domain       %s\n"
        "role         %s\n"
        "key          %s\n"
        "valid from   %s\n"
        "valid until  %s\n"
        "serial       %llu\n"
        "status       %s\n"
        "signature    %s\n",
        o.file.c_str(), cert->node_id().c_str(), cert->failure_domain().c_str(),
        std::string(proto::role_name(cert->role())).c_str(), fingerprint.c_str(),
        format_time(cert->not_before_ms()).c_str(), format_time(cert->not_after_ms()).c_str(),
        static_cast<unsigned long long>(cert->serial()), status.c_str(), sig.c_str());
  }
  std::fflush(stdout);

  if (!verdict) return fail(verdict.error().code, o.file + ": " + verdict.error().message);
  if (expired) {
    return fail("cert_expired", o.file + ": certificate of '" + cert->node_id() + "' expired at " +
                                    format_time(cert->not_after_ms()));
  }
  if (not_yet_valid) {
    return fail("cert_not_yet_valid", o.file + ": certificate of '" + cert->node_id() +
                                          "' is not valid before " +
                                          format_time(cert->not_before_ms()));
  }
  return {};
}

}  // namespace

void register_cert_commands(CLI::App& app, Context& ctx) {
  auto* cert = app.add_subcommand("cert", "node and operator certificates");
  cert->require_subcommand(1);
  auto o = std::make_shared<CertShowOptions>();
  auto* show = cert->add_subcommand("show", "print a certificate and check its validity");
  show->add_option("file", o->file, "certificate file")->required();
  show->add_flag("--json", o->json, "machine-readable output");
  show->add_option("--ca", o->ca, "CA directory: also verify the CA signature (uses DIR/ca.pub)");
  show->callback([&ctx, o] { ctx.result = cert_show(*o); });
}

}  // namespace meshd::ctl
