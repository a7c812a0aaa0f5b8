// meshctl enroll: the node's side of joining the fleet, written for container images
// without a shell (deploy/kubernetes: the keygen and wait-for-cert init containers, and
// deploy/kubernetes/enroll.sh, which runs these through `kubectl exec`).
//
//   enroll keygen  --dir DIR            node.key + node.pub, unless both already exist
//                                       and match (idempotent: safe on every pod start)
//   enroll pub     --dir DIR            print node.pub (what the operator's CA signs)
//   enroll install --dir DIR [--ca CA]  read a certificate on stdin; refuse it unless it
//                                       certifies node.pub (and, with --ca, is signed by
//                                       CA/ca.pub and valid now); write node.cert atomically
//   enroll status  --dir DIR [--ca CA]  succeed iff node.cert certifies node.pub (and
//                                       verifies against the CA): "is this node enrolled?"
//   enroll wait    --dir DIR --ca CA    block until `status` would succeed; log why not
//                  [--timeout S]        every minute (the daemon starts after this)
//
// The private key is never printed or copied: only node.pub leaves the node.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

#include "meshd/ctl/ctl.hpp"
#include "proto/cert.hpp"
#include "proto/keys.hpp"

namespace meshd::ctl {

namespace {

namespace fs = std::filesystem;

struct EnrollOptions {
  std::string dir = "/var/lib/meshd";
  std::string ca;         // CA directory holding ca.pub; empty = do not check the CA
  double timeout_s = 0;   // wait: 0 = forever
  double interval_s = 2;  // wait: poll period
};

fs::path key_path(const EnrollOptions& o) {
  return fs::path(o.dir) / "node.key";
}
fs::path pub_path(const EnrollOptions& o) {
  return fs::path(o.dir) / "node.pub";
}
fs::path cert_path(const EnrollOptions& o) {
  return fs::path(o.dir) / "node.cert";
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

Result<void> keygen(const EnrollOptions& o) {
  const bool have_key = file_exists(key_path(o));
  const bool have_pub = file_exists(pub_path(o));
  if (have_key && have_pub) {
    // Both present: they must be one keypair, or the node would be enrolled under a key
    // it cannot sign with.
    auto key = proto::load_secret_key(key_path(o));
    if (!key) return std::unexpected(key.error());
    auto pub = proto::load_public_key(pub_path(o));
    if (!pub) return std::unexpected(pub.error());
    if (!(key->public_key() == *pub)) {
      return fail("key_mismatch", pub_path(o).string() + " is not the public half of " +
                                      key_path(o).string() +
                                      "; remove both to give this node a new identity");
    }
    std::printf("node key present: %s (fingerprint %s)\n", key_path(o).c_str(),
                pub->fingerprint().c_str());
    return {};
  }
  if (have_key || have_pub) {
    return fail("key_incomplete",
                o.dir + " holds only " + (have_key ? "node.key" : "node.pub") +
                    "; refusing to overwrite part of an identity (remove it to re-key)");
  }
  if (auto d = ensure_dir(o.dir); !d) return d;
  auto key = proto::SecretKey::generate();
  if (auto r = proto::write_secret_key(key_path(o), key); !r) return r;
  if (auto r = proto::write_public_key(pub_path(o), key.public_key()); !r) return r;
  std::printf("generated node key %s (fingerprint %s); enroll it with the fleet CA\n",
              key_path(o).c_str(), key.public_key().fingerprint().c_str());
  return {};
}

Result<void> print_pub(const EnrollOptions& o) {
  // Validated first, so the operator never signs garbage.
  auto pub = proto::load_public_key(pub_path(o));
  if (!pub) return std::unexpected(pub.error());
  std::fputs(proto::format_public_key(*pub).c_str(), stdout);
  if (proto::format_public_key(*pub).back() != '\n') std::fputc('\n', stdout);
  return {};
}

// The certificate at `path` certifies this node's key (and, with a CA, verifies now).
// Errors name `shown` (the file, or "the certificate on stdin").
Result<v1::NodeCert> check_cert(const EnrollOptions& o, const fs::path& path,
                                const std::string& shown) {
  auto pub = proto::load_public_key(pub_path(o));
  if (!pub) return std::unexpected(pub.error());
  auto signed_cert = proto::load_cert_file(path);
  if (!signed_cert) {
    auto message = signed_cert.error().message;
    if (auto at = message.find(path.string()); at != std::string::npos) {
      message.replace(at, path.string().size(), shown);
    }
    return fail(signed_cert.error().code, message);
  }
  Result<v1::NodeCert> cert = proto::decode_cert(*signed_cert);
  if (!o.ca.empty()) {
    auto ca = proto::load_public_key(fs::path(o.ca) / "ca.pub");
    if (!ca) return std::unexpected(ca.error());
    cert = proto::verify_cert(*signed_cert, *ca, wall_now_ms(), v1::ROLE_NODE);
  }
  if (!cert) return fail(cert.error().code, shown + ": " + cert.error().message);
  auto cert_key = proto::cert_public_key(*cert);
  if (!cert_key) return std::unexpected(cert_key.error());
  if (!(*cert_key == *pub)) {
    return fail("cert_wrong_key", shown + " certifies key " + cert_key->fingerprint() +
                                      ", not this node's key " + pub->fingerprint() + " (" +
                                      pub_path(o).string() + ")");
  }
  return cert;
}

void print_enrolled(const v1::NodeCert& cert, const fs::path& path) {
  std::printf("enrolled: %s is node '%s', domain '%s', valid until %s\n", path.c_str(),
              cert.node_id().c_str(), cert.failure_domain().c_str(),
              format_time(cert.not_after_ms()).c_str());
}

Result<void> install(const EnrollOptions& o) {
  const std::string text{std::istreambuf_iterator<char>(std::cin),
                         std::istreambuf_iterator<char>()};
  if (text.empty()) return fail("cert_format", "no certificate on standard input");
  // Staged next to node.cert, checked, then renamed over it: a reader (the waiting init
  // container, the daemon) never sees a partial or unchecked certificate.
  const fs::path staged = fs::path(o.dir) / ("node.cert.incoming." + std::to_string(::getpid()));
  if (auto r = proto::write_file_atomic(staged, text, 0644, true); !r) return r;
  auto cert = check_cert(o, staged, "the certificate on stdin");
  std::error_code ec;
  if (!cert) {
    fs::remove(staged, ec);
    return std::unexpected(cert.error());
  }
  fs::rename(staged, cert_path(o), ec);
  if (ec) {
    fs::remove(staged, ec);
    return fail("io_error", "cannot rename into " + cert_path(o).string() + ": " + ec.message());
  }
  print_enrolled(*cert, cert_path(o));
  return {};
}

Result<void> status(const EnrollOptions& o) {
  if (!file_exists(cert_path(o))) {
    return fail("not_enrolled", cert_path(o).string() + " does not exist");
  }
  auto cert = check_cert(o, cert_path(o), cert_path(o).string());
  if (!cert) return std::unexpected(cert.error());
  print_enrolled(*cert, cert_path(o));
  return {};
}

Result<void> wait(const EnrollOptions& o) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto last_report = start - std::chrono::hours(1);
  std::string last_reason;
  for (;;) {
    std::string reason;
    if (!file_exists(fs::path(o.ca) / "ca.pub")) {
      reason =
          (fs::path(o.ca) / "ca.pub").string() + " does not exist (the CA is not published yet)";
    } else if (auto r = status(o)) {
      return {};
    } else {
      reason = r.error().message;
    }
    const auto now = clock::now();
    // Log when the reason changes and once a minute, not on every poll.
    if (reason != last_reason || now - last_report >= std::chrono::minutes(1)) {
      std::printf("waiting for enrollment: %s\n", reason.c_str());
      std::fflush(stdout);
      last_reason = reason;
      last_report = now;
    }
    if (o.timeout_s > 0 && now - start >= std::chrono::duration<double>(o.timeout_s)) {
      char waited[32];
      std::snprintf(waited, sizeof waited, "%g", o.timeout_s);
      return fail("timeout", std::string("not enrolled after ") + waited + " s: " + reason);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.interval_s));
  }
}

}  // namespace

void register_enroll_commands(CLI::App& app, Context& ctx) {
  auto* enroll = app.add_subcommand(
      "enroll", "node side of enrollment (shell-free helpers for containers and enroll.sh)");
  enroll->require_subcommand(1);
  auto add = [&](const char* name, const char* help, auto action, bool with_ca) {
    auto o = std::make_shared<EnrollOptions>();
    auto* cmd = enroll->add_subcommand(name, help);
    cmd->add_option("--dir", o->dir, "node state directory (node.key, node.pub, node.cert)");
    if (with_ca) cmd->add_option("--ca", o->ca, "CA directory holding ca.pub");
    cmd->callback([&ctx, o, action] { ctx.result = action(*o); });
    return std::pair{cmd, o};
  };
  add("keygen", "create node.key/node.pub unless a matching pair exists", keygen, false);
  add("pub", "print node.pub", print_pub, false);
  add("install", "install the certificate read on stdin as node.cert, if it is this node's",
      install, true);
  add("status", "succeed iff node.cert certifies node.pub (and verifies with --ca)", status, true);
  auto [wait_cmd, wait_opts] =
      add("wait", "wait until status succeeds (the CA is required)", wait, true);
  wait_cmd->get_option("--ca")->required();
  wait_cmd->add_option("--timeout", wait_opts->timeout_s, "give up after S seconds (0: never)");
  wait_cmd->add_option("--interval", wait_opts->interval_s, "poll period in seconds")
      ->check(CLI::PositiveNumber);
}

}  // namespace meshd::ctl
